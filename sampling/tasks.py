"""Celery tasks of sampling (queue "sampling"): take job ids, call one service.

`generate_pairs` is safe to deliver twice: a job that is done, failed or being sampled by a live
worker is skipped. `acks_late` and `reject_on_worker_lost` give a message back to the queue when
the worker dies mid-task; the job's heartbeat then tells the next delivery (or the recovery at
worker start) that the job lost its worker.
"""

import logging

from celery import shared_task
from celery.exceptions import MaxRetriesExceededError
from celery.signals import worker_ready
from django.conf import settings

logger = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5)
def generate_pairs(self, job_ids: list[int]) -> dict:
    """Sample the pairs of these jobs, batched with other waiting jobs."""
    from .services import generation_run

    summary = generation_run(job_ids=job_ids)
    if summary.busy and not (self.request.is_eager or self.request.called_directly):
        # Another run holds these jobs: a redelivery after its worker died arrives while the dead
        # run's heartbeat still looks fresh. Look again once a stopped heartbeat would show.
        try:
            raise self.retry(args=[summary.busy], countdown=settings.PREFLAB_SAMPLING_STALE_SECONDS + 1)
        except MaxRetriesExceededError:
            logger.warning("generation jobs %s stayed busy; leaving them to recovery", summary.busy)
    return summary.as_dict()


@shared_task(acks_late=True)
def warm_up_variants(variant_ids: list[int]) -> list[str]:
    """Load these variants' local models into the worker's model cache before their first job."""
    from .services import variants_warm_up

    return variants_warm_up(variant_ids=variant_ids)


@shared_task(acks_late=True)
def recover_stale_jobs() -> list[int]:
    """Queue again (or fail, after their last attempt) jobs whose worker stopped sending heartbeats."""
    from .services import jobs_recover_stale

    return jobs_recover_stale()


@worker_ready.connect
def _recover_when_a_worker_starts(**_kwargs) -> None:
    # A restarted worker is the usual sign that jobs were cut off: look for them at once.
    try:
        recover_stale_jobs()
    except Exception:
        logger.exception("could not recover stale generation jobs")
