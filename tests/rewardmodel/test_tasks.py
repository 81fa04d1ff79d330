"""The training task: its queue, a message delivered twice, a broker that is down, a message that was
lost, a real Celery worker (in this process on the file broker, and through Redis), and a worker
process whose pool child is killed in the middle of a run."""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from config.celery import app
from core import jobs
from preference_data.models import DatasetExport
from preference_data.services.builds import BUILD
from preference_data.services.exports import EXPORT
from preference_data.tasks import build_dataset, run_export
from rewardmodel.models import RunEvaluation, RunMetric, TrainingRun
from rewardmodel.services import runs
from rewardmodel.tasks import evaluate_reward_model, train_reward_model_run
from tests.conftest import file_broker_options, use_broker, wait_for
from tests.factories import AnnotatorFactory, UserFactory

from .runs import TINY, minilm_checkpoint, polite_batch, tiny_dataset

ROOT = Path(__file__).resolve().parents[2]
FINISHED = ["succeeded", "failed", "cancelled"]
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


def finished(run: TrainingRun) -> TrainingRun | None:
    return TrainingRun.objects.filter(pk=run.pk, status__in=FINISHED).first()


@pytest.fixture
def file_broker(tmp_path):
    """This process sends to kombu's file broker in a folder of its own, which no worker reads: each
    message stays there as a file named <time>_<uuid>.<queue>.msg."""
    previous = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    app.conf.task_always_eager = False
    use_broker("filesystem://", file_broker_options(tmp_path / "broker"))
    try:
        yield tmp_path / "broker" / "messages"
    finally:
        use_broker(*previous[:2])
        app.conf.task_always_eager = previous[2]


def sent(messages: Path) -> list[tuple[str, str, list]]:
    """(queue, task name, arguments) of the messages in the file broker's folder."""
    found = []
    for path in messages.glob("*.msg"):
        queue = path.name.rsplit(".", 2)[1]
        message = json.loads(path.read_bytes())
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        found.append((queue, message["headers"]["task"], args))
    return sorted(found)


def test_each_kind_of_work_names_its_task_and_queue():
    for kind_name, task, queue in (
        (runs.TRAINING, train_reward_model_run, "training"),
        (runs.EVALUATION, evaluate_reward_model, "default"),
        (BUILD, build_dataset, "default"),
        (EXPORT, run_export, "default"),
    ):
        kind = jobs.kind(kind_name)
        assert (kind.task, kind.queue, task.queue) == (task.name, queue, queue)
        # Long work: acknowledged after it ran, given back when its worker process dies.
        assert task.acks_late and task.reject_on_worker_lost
    assert train_reward_model_run.name == "rewardmodel.train_reward_model"
    assert app.conf.worker_prefetch_multiplier == 1
    if settings.REDIS_URL:  # Redis must not hand a run that is still training to a second worker
        assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] >= 48 * 3600


@pytest.mark.django_db
def test_each_message_goes_to_its_kinds_queue(file_broker):
    run = new_run(8)
    evaluation = RunEvaluation.objects.create(run=run, dataset=run.dataset)
    export = DatasetExport.objects.create(build=run.dataset)
    for kind_name, pk in ((runs.TRAINING, run.pk), (runs.EVALUATION, evaluation.pk), (BUILD, run.dataset.pk)):
        assert jobs.send(kind_name, [pk]) == 1
    jobs.send(EXPORT, [export.pk])
    assert sent(file_broker) == sorted(
        [
            ("training", "rewardmodel.train_reward_model", [run.pk]),
            ("default", "rewardmodel.evaluate_reward_model", [evaluation.pk]),
            ("default", "rewardmodel.build_dataset", [run.dataset.pk]),
            ("default", "rewardmodel.run_export", [export.pk]),
        ]
    )
    run.refresh_from_db()
    assert (run.status, run.dispatch_count, run.attempts) == ("queued", 1, 0)  # sent, not yet taken


@pytest.mark.django_db
def test_a_run_started_while_the_broker_is_down_stays_queued_and_is_sent_again(
    file_broker, django_capture_on_commit_callbacks
):
    shutil.rmtree(file_broker)  # the broker takes no message
    with django_capture_on_commit_callbacks(execute=True):
        run = new_run(8)  # the request does not fail
    run.refresh_from_db()
    assert (run.status, run.dispatch_count, run.error) == ("queued", 1, "") and run.dispatched_at is not None

    file_broker.mkdir()  # the broker is back
    assert jobs.reconcile()[runs.TRAINING]["resent"] == []  # sent moments ago: not due yet
    due = timezone.now() + timedelta(seconds=settings.PREFLAB_JOBS_RESEND_SECONDS + 1)
    assert jobs.reconcile(now=due)[runs.TRAINING]["resent"] == [run.pk]
    training = [message for message in sent(file_broker) if message[0] == "training"]
    assert training == [("training", "rewardmodel.train_reward_model", [run.pk])]
    run.refresh_from_db()
    assert (run.status, run.dispatch_count) == ("queued", 2)


@pytest.mark.django_db
def test_a_message_delivered_twice_trains_once():
    run = new_run()
    assert train_reward_model_run.delay(run.pk).get() == "succeeded"
    steps = list(RunMetric.objects.filter(run=run).values_list("pk", flat=True))
    assert train_reward_model_run.delay(run.pk).get() == "succeeded"  # the second delivery
    run.refresh_from_db()
    assert run.attempts == 1 and list(RunMetric.objects.filter(run=run).values_list("pk", flat=True)) == steps


@pytest.mark.django_db(transaction=True)
def test_a_second_delivery_while_the_run_trains_does_not_start_it_twice(embedded_worker):
    run = new_run(40, epochs=3)  # committed: sent to the worker, which starts training it
    wait_for(lambda: TrainingRun.objects.get(pk=run.pk).step >= 1, timeout=120, interval=0.02)
    assert train_reward_model_run(run.pk) == "busy"  # delivered here while the worker trains it
    jobs.send(runs.TRAINING, [run.pk])  # and once more through the broker, to the worker
    done = wait_for(lambda: finished(run), timeout=180)
    assert (done.status, done.attempts, done.step, done.dispatch_count) == ("succeeded", 1, done.total_steps, 2)
    assert list(done.steps.values_list("step", flat=True)) == list(range(1, done.total_steps + 1))


@pytest.mark.django_db(transaction=True)
def test_a_queued_run_whose_message_was_lost_is_sent_by_the_reconciler_and_trained(embedded_worker):
    researcher = UserFactory()
    dataset = tiny_dataset(researcher, [polite_batch(AnnotatorFactory.create_batch(3), 16)])
    # Queued, but its message never reached a worker (a broker that lost it, a process killed
    # between the commit and the send).
    lost = TrainingRun.objects.create(
        name="its message was lost",
        kind="helpfulness",
        dataset=dataset,
        base_checkpoint=minilm_checkpoint(),
        hyperparameters=runs.validate_hyperparameters(TINY),
    )
    assert jobs.reconcile()[runs.TRAINING]["resent"] == [lost.pk]
    assert jobs.reconcile()[runs.TRAINING]["resent"] == []  # sent just now: not sent twice
    done = wait_for(lambda: finished(lost), timeout=180)
    assert (done.status, done.attempts, done.dispatch_count) == ("succeeded", 1, 1), done.error
    assert done.evaluations.get().status == "done"
    assert jobs.reconcile()[runs.TRAINING] == {"resent": [], "recovered": []}


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_run_is_trained_by_a_celery_worker_through_redis(celery_worker):
    run = new_run()  # sent to Redis when the transaction commits
    done = wait_for(lambda: finished(run), 180)
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
def test_a_run_survives_its_worker_being_killed(postgres, redis_url, transactional_db, settings):
    """SIGKILL the pool process mid-run: the message comes back (acks_late, reject on worker lost) and
    finds the run still held (its heartbeat is fresh), so it does nothing; once the heartbeat is stale
    the reconciler gives the run back to the queue and the worker resumes it from its checkpoint."""
    # This process runs the reconciler. Longer than the killed message takes to come back, so that
    # delivery finds the run still held and only the reconciler can give it back.
    settings.PREFLAB_TRAINING_STALE_SECONDS = 10
    previous = (app.conf.broker_url, app.conf.broker_transport_options)
    use_broker(redis_url, {"visibility_timeout": 48 * 3600})
    app.conf.task_always_eager = False
    app.control.purge()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": redis_url,
        "PREFLAB_MEDIA_ROOT": settings.MEDIA_ROOT,
        "PREFLAB_TORCH_THREADS": "1",
        "PREFLAB_TRAINING_HEARTBEAT_SECONDS": "0.5",
        "PREFLAB_TRAINING_STALE_SECONDS": str(settings.PREFLAB_TRAINING_STALE_SECONDS),
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

        recovered = []

        def reconciled_until_finished():
            # What celery beat runs every PREFLAB_RECONCILE_SECONDS.
            recovered.extend(jobs.reconcile()[runs.TRAINING]["recovered"])
            return finished(run)

        done = wait_for(reconciled_until_finished, 300, interval=1)
        assert done.status == "succeeded", done.error
        assert recovered == [run.pk]  # the message that came back found the run held; the reconciler gave it back
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
        use_broker(*previous)
