"""The researchers' batch list: every batch's overlap progress in one query, counted as the batch page counts it."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation.models import Batch
from annotation.selectors import batch_progress, batches_with_progress
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory, UserFactory
from tests.preference_data.labelled import rate

pytestmark = pytest.mark.django_db

LIST_COLUMNS = ("comparisons", "complete", "ratings_done", "ratings_needed", "percent")


def test_the_batch_list_reads_every_batch_s_progress_in_one_query(client):
    researcher = UserFactory()
    raters = AnnotatorFactory.create_batch(3)
    busy = BatchFactory(name="busy", overlap=3)
    first, second, *_ = ComparisonFactory.create_batch(4, batch=busy)
    rate(first, raters, [("a", "better", "")] * 3)  # complete
    rate(second, raters[:1], [("b", "slightly_better", "")])  # one rating of three
    # Gold and repeats are quality checks, counted apart from the overlap queue.
    gold = ComparisonFactory(batch=busy, is_gold=True, gold_choice="a", gold_marked_at=timezone.now())
    rate(gold, raters[:2], [("a", "better", "")] * 2)
    rate(ComparisonFactory(batch=busy, repeat_of=first), raters[:1], [("a", "better", "")])
    half = BatchFactory(name="half", overlap=1)
    rate(ComparisonFactory(batch=half), raters[:1], [("a", "better", "")])
    ComparisonFactory(batch=half)
    BatchFactory(name="empty")
    BatchFactory(name="closed", is_open=False)

    with CaptureQueriesContext(connection) as queries:
        rows = batches_with_progress(user=researcher)
    assert len(queries) == 1
    assert [row["batch"] for row in rows] == list(Batch.objects.all())  # the model's order, newest first
    for row in rows:
        expected = batch_progress(row["batch"])
        assert row["progress"] == {column: expected[column] for column in LIST_COLUMNS}
    progress = {row["batch"].name: row["progress"] for row in rows}
    assert progress["busy"] == {
        "comparisons": 4,
        "complete": 1,
        "ratings_done": 4,
        "ratings_needed": 12,
        "percent": 33.3,
    }
    assert progress["half"]["percent"] == 50.0 and progress["empty"]["percent"] == 0.0

    client.force_login(researcher)
    page = client.get("/research/").content.decode()
    assert "4 / 12" in page and "1 / 2" in page and "closed" in page
