"""Celery tasks of the agreement app (queue "default"): take ids, call one service.

The task names keep the "annotation." prefix they had before agreement became its own app, so that
messages already in the queue, and workers of the previous release, still find them.
"""

from annotation.models import Batch
from core.jobs import job_task

from . import services


@job_task(name="annotation.recompute_agreement", queue="default", long=True)
def recompute_agreement(batch_id: int) -> int | None:
    """Recompute a batch's agreement report. A second delivery recomputes the same figures."""
    if not Batch.objects.filter(pk=batch_id).exists():
        return None
    return services.agreement_recompute(batch_id=batch_id).pk


@job_task(name="annotation.compute_agreement_report", queue="default", long=True)
def compute_agreement_report(report_id: int) -> int | None:
    """Compute a report over a researcher's filter."""
    from .models import AgreementReport

    if not AgreementReport.objects.filter(pk=report_id).exists():
        return None
    return services.agreement_report_compute(report_id=report_id).pk
