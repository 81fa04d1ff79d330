"""Celery tasks of sampling (queue "sampling"): take job ids, call one service.

`generate_pairs` is safe to deliver twice: a job that is done, failed or being sampled by a live
worker is skipped. A job whose worker died is given back to the queue by the reconciler
(core.jobs) once its heartbeat is stale.
"""

from core.jobs import job_task

from . import services


@job_task(name="sampling.generate_pairs", queue="sampling", long=True)
def generate_pairs(job_ids: list[int]) -> dict:
    """Sample the pairs of these jobs, batched with other waiting jobs."""
    return services.generation_run(job_ids=job_ids).as_dict()


@job_task(name="sampling.warm_up_variants", queue="sampling")
def warm_up_variants(variant_ids: list[int]) -> list[str]:
    """Load these variants' local models into the worker's model cache before their first job."""
    return services.variants_warm_up(variant_ids=variant_ids)
