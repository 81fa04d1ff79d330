"""The training task: its queue, a message delivered twice, a real Celery worker through Redis, and a
worker process whose pool child is killed in the middle of a run."""

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app
from rewardmodel.models import RunMetric, TrainingRun
from rewardmodel.services import runs
from rewardmodel.tasks import evaluate_reward_model, train_reward_model_run
from tests.conftest import wait_for
from tests.factories import AnnotatorFactory, UserFactory

from .runs import TINY, minilm_checkpoint, polite_batch, tiny_dataset

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("training_settings")


def new_run(n: int = 24, **hyperparameters) -> TrainingRun:
    researcher = UserFactory()
    dataset = tiny_dataset(researcher, [polite_batch(AnnotatorFactory.create_batch(3), n)])
    return runs.run_create(
        created_by=researcher,
        dataset=dataset,
        base_checkpoint=minilm_checkpoint(),
        hyperparameters={**TINY, **hyperparameters},
    )


def test_training_goes_to_the_training_queue_and_is_given_back_when_its_worker_dies():
    route = app.amqp.router.route
    assert route({}, train_reward_model_run.name)["queue"].name == "training"
    assert route({}, evaluate_reward_model.name)["queue"].name == "default"
    assert train_reward_model_run.acks_late and train_reward_model_run.reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.broker_transport_options["visibility_timeout"] >= 48 * 3600


@pytest.mark.django_db
def test_a_message_delivered_twice_trains_once():
    run = new_run()
    assert train_reward_model_run.delay(run.pk).get() == "succeeded"
    steps = list(RunMetric.objects.filter(run=run).values_list("pk", flat=True))
    assert train_reward_model_run.delay(run.pk).get() == "succeeded"  # the second delivery
    run.refresh_from_db()
    assert run.attempts == 1 and list(RunMetric.objects.filter(run=run).values_list("pk", flat=True)) == steps


@pytest.mark.django_db(transaction=True)
def test_a_second_delivery_while_the_run_trains_does_not_start_it_twice(training_queue):
    run = new_run(40, epochs=3)  # committed: the in-process training queue takes it at once
    wait_for(lambda: TrainingRun.objects.get(pk=run.pk).step >= 1, timeout=120, interval=0.02)
    assert train_reward_model_run(run.pk) == "busy"
    assert training_queue.wait_idle(120)
    run.refresh_from_db()
    assert (run.status, run.attempts, run.step) == ("succeeded", 1, run.total_steps)
    assert list(run.steps.values_list("step", flat=True)) == list(range(1, run.total_steps + 1))


@pytest.mark.django_db(transaction=True)
def test_queued_runs_lost_with_a_restarted_server_are_queued_again(training_queue):
    """The embedded default queues runs in memory; after a restart the pages hand them over again."""
    run = new_run(16)
    assert training_queue.wait_idle(120)
    lost = TrainingRun.objects.create(
        name="queued before the restart",
        kind=run.kind,
        dataset=run.dataset,
        base_checkpoint=run.base_checkpoint,
        hyperparameters=run.hyperparameters,
    )
    assert runs.runs_recover_in_process() == [lost.pk]
    assert runs.runs_recover_in_process() == []  # held by the queue now: not handed over twice
    assert training_queue.wait_idle(120)
    assert TrainingRun.objects.get(pk=lost.pk).status == "succeeded"
    assert runs.runs_recover_in_process() == []


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_run_is_trained_by_a_celery_worker_through_redis(celery_worker):
    run = new_run()  # queued to Redis when the transaction commits
    done = wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, status__in=["succeeded", "failed"]).first(), 180)
    assert done.status == "succeeded", done.error
    assert done.attempts == 1 and done.celery_task_id and done.worker
    assert done.evaluations.get().status == "done"

    train_reward_model_run.apply_async(args=[run.pk])  # the same message again
    later = new_run(8)
    wait_for(lambda: TrainingRun.objects.filter(pk=later.pk, status="succeeded").exists(), 180)
    assert TrainingRun.objects.get(pk=run.pk).attempts == 1


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.services
@pytest.mark.slow
def test_a_run_survives_its_worker_being_killed(postgres, redis_url, transactional_db):
    """SIGKILL the pool process mid-run: the message comes back (acks_late, reject on worker lost),
    the next delivery waits until the dead run's heartbeat is stale, then resumes from its checkpoint."""
    app.conf.broker_url = redis_url
    app.conf.task_always_eager = False
    app.control.purge()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": redis_url,
        "PREFLAB_MEDIA_ROOT": settings.MEDIA_ROOT,
        "PREFLAB_TORCH_THREADS": "1",
        "PREFLAB_TRAINING_HEARTBEAT_SECONDS": "0.5",
        "PREFLAB_TRAINING_STALE_SECONDS": "3",
        "PREFLAB_TRAINING_PROGRESS_SECONDS": "0",
    }
    worker = subprocess.Popen(
        [
            *[sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "training", "-P", "prefork", "-c", "1"],
            *["--without-mingle", "--without-gossip", "-n", f"killed-{uuid.uuid4().hex[:8]}@%h", "-l", "warning"],
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run = new_run(48, epochs=4, checkpoint_every=2)
        running = wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, step__gte=3, status="running").first(), 180)
        first_steps = dict(RunMetric.objects.filter(run=run, step__lte=2).values_list("step", "pk"))
        pid = int(running.worker.rsplit(":", 1)[1])
        assert pid != worker.pid  # the pool child, not the main process
        os.kill(pid, signal.SIGKILL)

        done = wait_for(lambda: TrainingRun.objects.filter(pk=run.pk, status__in=["succeeded", "failed"]).first(), 300)
        assert done.status == "succeeded", done.error
        assert done.attempts == 2 and done.step == done.total_steps
        steps = dict(RunMetric.objects.filter(run=run).values_list("step", "pk"))
        assert list(steps) == list(range(1, done.total_steps + 1))
        assert all(steps[s] == pk for s, pk in first_steps.items())  # resumed from checkpoint-2, not from scratch
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
        app.control.purge()
