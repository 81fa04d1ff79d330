"""The comparison-dataset app's background work, registered with core.jobs when the app is ready.

The job kinds and task names keep their `rewardmodel.` prefix: rows and messages queued by the
previous release are still found and run.
"""

from django.conf import settings

from core import jobs

from ..models import DatasetBuild, DatasetExport
from .builds import BUILD
from .exports import EXPORT, remove_partial_files


def register_background_work() -> None:
    for name, model, task in (
        (BUILD, DatasetBuild, "rewardmodel.build_dataset"),
        (EXPORT, DatasetExport, "rewardmodel.run_export"),
    ):
        jobs.register(
            jobs.JobKind(
                name=name,
                rows=model.objects.all,
                task=task,
                queue="default",
                stale_seconds=lambda: settings.PREFLAB_JOBS_STALE_SECONDS,
                max_attempts=lambda: settings.PREFLAB_JOBS_MAX_ATTEMPTS,
            )
        )
    jobs.register_step("rewardmodel.remove_partial_export_files", remove_partial_files)
