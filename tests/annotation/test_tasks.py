import pytest

from annotation import services
from annotation.models import Comparison, Rating
from annotation.tasks import refresh_batch_labels
from tests.conftest import wait_for
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory


def _rate_all(batch, annotators, choose):
    for annotator in annotators:
        lease = services.assignment_next(annotator=annotator, batch=batch)
        comparison = lease.assignment.comparison
        services.rating_submit(
            annotator=annotator,
            assignment_id=lease.assignment.pk,
            chosen_response_id=comparison.response_a_id if choose == "a" else comparison.response_b_id,
            strength="better",
            idempotency_key=f"k{annotator.pk}",
        )


@pytest.mark.services
def test_label_refresh_runs_on_a_real_worker_through_redis(celery_worker):
    batch = BatchFactory(overlap=3)
    comparison = ComparisonFactory(batch=batch)
    _rate_all(batch, AnnotatorFactory.create_batch(3), "a")
    # A researcher removes a rating in the admin; the label must follow once the task has run.
    Rating.objects.filter(comparison=comparison).first().delete()
    Comparison.objects.filter(pk=comparison.pk).update(label_choice="a")  # stale label
    refresh_batch_labels.apply_async(args=[batch.pk])
    refreshed = wait_for(lambda: Comparison.objects.filter(pk=comparison.pk, status="open", rating_count=2).first())
    assert refreshed.label_choice == "" and refreshed.label_vote == ""


@pytest.mark.django_db
def test_label_refresh_in_process_is_idempotent():
    batch = BatchFactory(overlap=3)
    ComparisonFactory(batch=batch)
    _rate_all(batch, AnnotatorFactory.create_batch(3), "b")
    assert refresh_batch_labels.delay(batch.pk).get() == 1
    assert refresh_batch_labels.delay(batch.pk).get() == 1
    assert Comparison.objects.get().label_choice == "b"
