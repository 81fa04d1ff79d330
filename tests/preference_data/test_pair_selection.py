"""Datasets split by how their pairs were chosen: the rule a reward model used (kept in each
response's generation record) selects comparisons; "random" takes random draws and imported pairs."""

import pytest

from config.exceptions import InvalidInput
from preference_data import services
from preference_data.models import DatasetPair, JobStatus
from tests.factories import AnnotatorFactory, BatchFactory, ResponseFactory
from tests.helpers import client_for

from .labelled import labelled

pytestmark = pytest.mark.django_db

VOTES = [("a", "better", "")] * 3


def chosen_by(rule):
    record = {"pair_selection": None} if rule is None else {"pair_selection": {"rule": rule, "k": 4}}
    return {"response_a": ResponseFactory(generation=record), "response_b": ResponseFactory(generation=record)}


def build(researcher, **options):
    created = services.dataset_build_create(created_by=researcher, name="split", enqueue=False, **options)
    built = services.dataset_build_run(build_id=created.pk)
    assert built.status == JobStatus.DONE, built.error
    return set(DatasetPair.objects.filter(build=built).values_list("comparison_id", flat=True))


def test_a_dataset_takes_only_the_pairs_chosen_by_the_asked_rules(researcher):
    raters = AnnotatorFactory.create_batch(3)
    batch = BatchFactory()
    uncertain = labelled(batch, raters, VOTES, **chosen_by("uncertain"))
    best_worst = labelled(batch, raters, VOTES, **chosen_by("best_worst"))
    drawn = labelled(batch, raters, VOTES, **chosen_by(None))
    imported = labelled(batch, raters, VOTES)  # no generation record at all
    everything = {uncertain.pk, best_worst.pk, drawn.pk, imported.pk}

    assert build(researcher, batch_ids=[batch.pk]) == everything
    assert build(researcher, batch_ids=[batch.pk], pair_selections=["uncertain"]) == {uncertain.pk}
    assert build(researcher, batch_ids=[batch.pk], pair_selections=["random"]) == {drawn.pk, imported.pk}
    assert build(researcher, batch_ids=[batch.pk], pair_selections=["random", "best_worst"]) == {
        best_worst.pk,
        drawn.pk,
        imported.pk,
    }
    with pytest.raises(InvalidInput, match="Unknown pair selection"):
        build(researcher, batch_ids=[batch.pk], pair_selections=["loudest"])


def test_the_api_records_the_split_in_the_selection(researcher):
    raters = AnnotatorFactory.create_batch(3)
    batch = BatchFactory()
    labelled(batch, raters, VOTES, **chosen_by("disagree"))
    answer = client_for(researcher).post(
        "/api/dataset-builds/",
        {"name": "disagreements", "batches": [batch.pk], "pair_selections": ["disagree"]},
        format="json",
    )
    assert answer.status_code in (201, 202), answer.json()
    assert answer.json()["selection"]["pair_selections"] == ["disagree"]
