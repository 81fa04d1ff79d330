"""Celery tasks of the comparison-dataset app: take ids, call one service.

Builds and exports run on the "default" queue. Their names keep the `rewardmodel.` prefix they were
registered under before this app existed, so messages already on the broker still find them.
Each status row makes a second delivery harmless (core.jobs.claim).
"""

from core.jobs import job_task

from . import services


@job_task(name="rewardmodel.build_dataset", queue="default", long=True)
def build_dataset(build_id: int) -> str:
    return services.dataset_build_run(build_id=build_id).status


@job_task(name="rewardmodel.run_export", queue="default", long=True)
def run_export(export_id: int) -> str:
    return services.dataset_export_run(export_id=export_id).status
