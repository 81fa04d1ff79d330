"""Celery tasks of the quizzes app."""

from core.jobs import job_task

from . import services


@job_task(name="quizzes.expire_overdue_sections", queue="default")
def expire_overdue_sections() -> int:
    """Close the sections whose time ran out, for candidates who never came back (the reconciler
    does the same on every pass)."""
    return services.attempts_expire_overdue()
