"""Celery tasks of the annotation app (queue "default"): take ids, call one service."""

from core.jobs import job_task

from . import services
from .models import Comparison


@job_task(name="annotation.refresh_batch_labels", queue="default", long=True)
def refresh_batch_labels(batch_id: int) -> int:
    """Recompute every comparison's majority label in a batch (after ratings were edited or removed)."""
    refreshed = 0
    for comparison in Comparison.objects.filter(batch_id=batch_id).select_related("batch").iterator(chunk_size=500):
        services.comparison_label_refresh(comparison=comparison)
        refreshed += 1
    return refreshed
