"""Generation on real Celery workers: the embedded default's worker on the file broker (no Redis), a
worker thread with the real small model through Redis, and a worker process with beat (so the
reconciler runs) whose pool child is killed in the middle of a job."""

import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from annotation.models import Assignment, Comparison
from core import jobs
from sampling import services
from sampling.models import GenerationJob
from sampling.services import GENERATION
from tests.conftest import use_broker, wait_for
from tests.factories import AnnotatorFactory
from tests.sampling.conftest import prompt_batch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def heartbeats(settings):
    """Running jobs write a heartbeat from their side thread twice a second."""
    settings.PREFLAB_JOBS_HEARTBEAT_SECONDS = 0.5


def finished(job_id: int, timeout: float = 120) -> GenerationJob:
    return wait_for(lambda: GenerationJob.objects.filter(pk=job_id, status__in=["done", "failed"]).first(), timeout)


def test_the_embedded_worker_samples_a_prompt_without_redis(embedded_worker, heartbeats, endpoint_variants, server):
    writer = AnnotatorFactory()

    job = services.prompt_submit(annotator=writer, batch=prompt_batch(endpoint_variants), text="What is 2 + 2?")

    done = finished(job.pk, 60)
    assert done.status == "done", done.error_detail
    assert (done.attempts, done.dispatch_count) == (1, 1)
    # The worker is threads of this process, as `make demo` runs it.
    assert done.worker == jobs.this_process()
    assert done.comparison.response_a.text != done.comparison.response_b.text
    assert Assignment.objects.get(comparison=done.comparison).annotator == writer
    assert len(server.requests()) == 2


def test_the_reconciler_hands_a_dead_workers_job_to_the_embedded_worker(
    embedded_worker, heartbeats, endpoint_variants, settings, monkeypatch
):
    """A job left running by a worker that died (its heartbeat stopped, and the file broker's message
    went with it) is queued again by the reconciler and sampled by a live worker; a job whose worker
    is alive is left alone."""
    settings.PREFLAB_SAMPLING_STALE_SECONDS = 30
    batch = prompt_batch(endpoint_variants)
    with monkeypatch.context() as patch:
        patch.setattr(jobs, "enqueue", lambda kind_name, ids: None)  # their messages were taken by the dead worker
        lost = services.prompt_submit(annotator=AnnotatorFactory(), batch=batch, text="Hello?")
        alive = services.prompt_submit(annotator=AnnotatorFactory(), batch=batch, text="Still there?")
    now = timezone.now()
    GenerationJob.objects.filter(pk=lost.pk).update(
        status="running", attempts=1, worker="dead-host:1", heartbeat_at=now - timedelta(minutes=5)
    )
    GenerationJob.objects.filter(pk=alive.pk).update(
        status="running", attempts=1, worker="live-host:1", heartbeat_at=now
    )

    assert jobs.reconcile()[GENERATION] == {"resent": [], "recovered": [lost.pk]}

    done = finished(lost.pk, 60)
    assert done.status == "done", done.error_detail
    assert (done.attempts, done.dispatch_count, done.worker) == (2, 1, jobs.this_process())
    alive.refresh_from_db()
    assert (alive.status, alive.worker, alive.comparison_id) == ("running", "live-host:1", None)


@pytest.mark.services
@pytest.mark.slow
def test_a_prompt_is_sampled_by_a_worker_with_the_real_model(celery_worker, heartbeats, smollm_variants):
    writer = AnnotatorFactory()
    batch = prompt_batch(smollm_variants)

    job = services.prompt_submit(annotator=writer, batch=batch, text="What is the capital of France?")

    done = finished(job.pk)
    assert done.status == "done", done.error_detail
    assert (done.attempts, done.dispatch_count) == (1, 1) and done.worker
    comparison = done.comparison
    assert comparison.response_a.variant_id != comparison.response_b.variant_id
    assert comparison.response_a.temperature != comparison.response_b.temperature
    assert Assignment.objects.get(comparison=comparison).annotator == writer

    # The same message delivered again is skipped; a later job shows the worker got past it.
    jobs.send_task("sampling.generate_pairs", [[job.pk]], queue="sampling")
    later = services.prompt_submit(annotator=AnnotatorFactory(), batch=batch, text="Name a large ocean.")
    finished(later.pk)
    assert Comparison.objects.count() == 2
    assert GenerationJob.objects.get(pk=job.pk).attempts == 1


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.services
def test_a_job_survives_its_worker_being_killed(
    postgres, redis_url, transactional_db, tmp_path, endpoint_variants, server
):
    """SIGKILL the pool process mid-request. The message comes back (acks_late, reject on worker
    lost) while the dead run's heartbeat still looks fresh, so that delivery leaves the job alone (a
    second delivery must never run a job twice); the reconciler (beat in the worker process) then
    sees the heartbeat go stale, queues the job again and sends it, and it is sampled on attempt 2."""
    from config.celery import app

    previous = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    use_broker(redis_url, {"visibility_timeout": 48 * 3600})
    app.conf.task_always_eager = False
    app.control.purge()
    server.set("slow", delay=30)
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": redis_url,
        "PREFLAB_JOBS_HEARTBEAT_SECONDS": "0.5",
        # Longer than the pool takes to notice its killed child and give the message back (5 to 10 s:
        # Celery's worker_lost_wait), so that delivery finds the heartbeat fresh and only the
        # reconciler can recover the job.
        "PREFLAB_SAMPLING_STALE_SECONDS": "15",
        "PREFLAB_RECONCILE_SECONDS": "1",
        "PREFLAB_OPENAI_READ_TIMEOUT": "60",
    }
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "config", "worker", "--beat"),
            *("-Q", "sampling,default", "-P", "prefork", "-c", "2", "-l", "warning"),
            *("--without-mingle", "--without-gossip", "-n", f"killed-{uuid.uuid4().hex[:8]}@%h"),
            *("--schedule", str(tmp_path / "celerybeat-schedule")),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job = services.prompt_submit(annotator=AnnotatorFactory(), batch=prompt_batch(endpoint_variants), text="Hi")
        running = wait_for(lambda: GenerationJob.objects.filter(pk=job.pk, status="running").first(), 90)
        killed = running.worker
        pid = int(killed.rsplit(":", 1)[1])
        assert pid != worker.pid  # the pool child, not the main process
        os.kill(pid, signal.SIGKILL)
        server.set("varied")

        done = finished(job.pk, 90)
        assert done.status == "done", done.error_detail
        assert done.attempts == 2 and done.worker != killed
        assert done.dispatch_count == 2  # sent after commit, then again by the reconciler
        assert Comparison.objects.count() == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
        app.control.purge()
        use_broker(*previous[:2])
        app.conf.task_always_eager = previous[2]
