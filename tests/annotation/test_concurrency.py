"""Many annotators asking for work and submitting at once, on PostgreSQL's real row locks."""

import random
import threading

import pytest
from django.db import connection, connections
from django.db.models import Count

from annotation import services
from annotation.models import Assignment, Comparison, Rating
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory

N_ANNOTATORS = 16
N_COMPARISONS = 20
OVERLAP = 3


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_never_exceed_overlap_or_lose_ratings(postgres):
    batch = BatchFactory(overlap=OVERLAP)
    ComparisonFactory.create_batch(N_COMPARISONS, batch=batch)
    annotators = AnnotatorFactory.create_batch(N_ANNOTATORS)
    accepted: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(N_ANNOTATORS)

    def work(annotator):
        rng = random.Random(annotator.pk)
        try:
            start.wait()
            while True:
                lease = services.assignment_next(annotator=annotator, batch=batch)
                if lease is None:
                    break
                comparison = lease.assignment.comparison
                key = f"{annotator.pk}-{comparison.pk}"
                kwargs = dict(
                    annotator=annotator,
                    assignment_id=lease.assignment.pk,
                    chosen_response_id=rng.choice([comparison.response_a_id, comparison.response_b_id]),
                    strength="better",
                    idempotency_key=key,
                )
                result = services.rating_submit(**kwargs)
                # a double click: the same request again must not write a second rating
                twin = services.rating_submit(**kwargs)
                assert twin.rating.pk == result.rating.pk and not twin.created
                with lock:
                    accepted.append(result.rating.pk)
        except BaseException as exc:  # surfaced by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(a,)) for a in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert connection.vendor == "postgresql"

    per_comparison = Comparison.objects.filter(batch=batch).annotate(n=Count("ratings"))
    assert max(c.n for c in per_comparison) <= OVERLAP
    assert all(c.n == OVERLAP and c.rating_count == OVERLAP and c.status == "complete" for c in per_comparison)
    assert sorted(Rating.objects.values_list("pk", flat=True)) == sorted(accepted)
    assert len(accepted) == N_COMPARISONS * OVERLAP
    pairs = Rating.objects.values("annotator", "comparison").annotate(n=Count("id"))
    assert all(p["n"] == 1 for p in pairs)
    assert not Assignment.objects.filter(status="leased").exists()
