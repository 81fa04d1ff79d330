"""Celery tasks of the annotation app: take ids, load rows, call one service."""

from celery import shared_task

from .models import Batch, Comparison


@shared_task(acks_late=True)
def refresh_batch_labels(batch_id: int) -> int:
    """Recompute every comparison's majority label in a batch (after ratings were edited or removed)."""
    from .services import comparison_label_refresh

    batch = Batch.objects.filter(pk=batch_id).first()
    if batch is None:
        return 0
    refreshed = 0
    for comparison in Comparison.objects.filter(batch=batch).select_related("batch").iterator(chunk_size=500):
        comparison_label_refresh(comparison=comparison)
        refreshed += 1
    return refreshed
