"""Celery tasks of the quizzes app: take ids (or nothing), call one service."""

from celery import shared_task


@shared_task(acks_late=True)
def expire_overdue_sections() -> int:
    """Close the sections whose time ran out, for candidates who never came back (run it every minute
    from celery beat; pages and the review queue also do it on read)."""
    from .services import attempts_expire_overdue

    return attempts_expire_overdue()
