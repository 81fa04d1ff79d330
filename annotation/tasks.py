"""Celery tasks of the annotation app (queue "default"): take ids, call one service."""

from core.jobs import job_task

from . import agreement_services, services
from .models import Batch, Comparison


@job_task(name="annotation.refresh_batch_labels", queue="default", long=True)
def refresh_batch_labels(batch_id: int) -> int:
    """Recompute every comparison's majority label in a batch (after ratings were edited or removed)."""
    refreshed = 0
    for comparison in Comparison.objects.filter(batch_id=batch_id).select_related("batch").iterator(chunk_size=500):
        services.comparison_label_refresh(comparison=comparison)
        refreshed += 1
    return refreshed


@job_task(name="annotation.recompute_agreement", queue="default", long=True)
def recompute_agreement(batch_id: int) -> int | None:
    """Recompute a batch's agreement report. A second delivery recomputes the same figures."""
    if not Batch.objects.filter(pk=batch_id).exists():
        return None
    return agreement_services.agreement_recompute(batch_id=batch_id).pk


@job_task(name="annotation.compute_agreement_report", queue="default", long=True)
def compute_agreement_report(report_id: int) -> int | None:
    """Compute a report over a researcher's filter."""
    from .models import AgreementReport

    if not AgreementReport.objects.filter(pk=report_id).exists():
        return None
    return agreement_services.agreement_report_compute(report_id=report_id).pk
