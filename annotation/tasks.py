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


@shared_task(acks_late=True)
def recompute_agreement(batch_id: int) -> int | None:
    """Recompute a batch's agreement report (queued by agreement_recompute_request). A second
    delivery recomputes the same figures."""
    from .agreement_services import agreement_recompute

    if not Batch.objects.filter(pk=batch_id).exists():
        return None
    return agreement_recompute(batch_id=batch_id).pk


@shared_task(acks_late=True)
def compute_agreement_report(report_id: int) -> int | None:
    """Compute a report over a researcher's filter (queued by agreement_report_request)."""
    from .agreement_services import agreement_report_compute
    from .models import AgreementReport

    if not AgreementReport.objects.filter(pk=report_id).exists():
        return None
    return agreement_report_compute(report_id=report_id).pk
