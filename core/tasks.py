"""The reconciler's task (queue "default"), sent by celery beat every PREFLAB_RECONCILE_SECONDS."""

from . import jobs


@jobs.job_task(name="core.reconcile", queue="default")
def reconcile() -> dict:
    return jobs.reconcile()
