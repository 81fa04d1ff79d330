"""Celery tasks of the reward-model app: take ids, load the row, call one service.

The dataset and evaluation tasks run on the "default" queue, train_reward_model_run on "training"
(config.settings.celery routes rewardmodel.tasks.train_* there, the rest to "default").
acks_late + reject_on_worker_lost give a job back when a worker dies; the status row makes a second
delivery harmless (a finished job is left alone; a dataset build restarts, a training run resumes
from its last checkpoint).
"""

import logging

from celery import shared_task
from celery.exceptions import MaxRetriesExceededError
from celery.signals import worker_ready

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def build_dataset(build_id: int) -> str:
    from .services import dataset_build_run

    return dataset_build_run(build_id=build_id).status


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_export(export_id: int) -> str:
    from .services import dataset_export_run

    return dataset_export_run(export_id=export_id).status


# --- reward-model training (queue "training": the name starts with train_) -----------------------


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5)
def train_reward_model_run(self, run_id: int) -> str:
    """Train (or resume) one reward model. A delivery that finds the run held by a live worker does
    nothing; with a broker it looks again once a dead worker's heartbeat would have gone stale, since
    a message given back by a killed worker arrives while that heartbeat still looks fresh."""
    from django.conf import settings

    from .services.runs import run_execute

    outcome = run_execute(run_id=run_id, task_id=self.request.id or "")
    if outcome.busy and not (self.request.is_eager or self.request.called_directly):
        try:
            raise self.retry(countdown=settings.PREFLAB_TRAINING_STALE_SECONDS + 1)
        except MaxRetriesExceededError:
            logger.warning("training run %s stayed busy; leaving it to the worker that holds it", run_id)
    return outcome.status


@shared_task(acks_late=True, reject_on_worker_lost=True)
def evaluate_reward_model(evaluation_id: int) -> str:
    """Score a dataset's held-out pairs with a trained reward model (queue "default")."""
    from .services.runs import evaluation_run

    return evaluation_run(evaluation_id=evaluation_id).status


@shared_task(acks_late=True)
def recover_stale_training_runs() -> list[int]:
    """Deliver again the runs whose worker stopped sending heartbeats."""
    from .services.runs import runs_recover_stale

    return runs_recover_stale()


@worker_ready.connect
def _recover_training_runs_when_a_worker_starts(sender=None, **_kwargs) -> None:
    # A worker that starts after a crash finds the runs it was training; only training workers look.
    queues = {q.name for q in getattr(getattr(sender, "task_consumer", None), "queues", [])}
    if queues and "training" not in queues:
        return
    try:
        recover_stale_training_runs()
    except Exception:
        logger.exception("could not recover stale training runs")
