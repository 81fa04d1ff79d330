"""Generation on real Celery workers through Redis: a worker thread with the real small model, and a
worker process whose pool child is killed in the middle of a job."""

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

from annotation.models import Assignment, Comparison
from sampling import services
from sampling.models import GenerationJob
from tests.conftest import wait_for
from tests.factories import AnnotatorFactory
from tests.sampling.conftest import prompt_batch

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def queued_for_real(settings):
    """Jobs go to the broker after commit, not inline; running jobs send heartbeats."""
    settings.PREFLAB_SAMPLING_INLINE = False
    settings.PREFLAB_SAMPLING_HEARTBEAT_SECONDS = 0.5


@pytest.mark.slow
def test_a_prompt_is_sampled_by_a_worker_with_the_real_model(celery_worker, queued_for_real, smollm_variants):
    writer = AnnotatorFactory()
    batch = prompt_batch(smollm_variants)

    job = services.prompt_submit(annotator=writer, batch=batch, text="What is the capital of France?")

    done = wait_for(lambda: GenerationJob.objects.filter(pk=job.pk, status__in=["done", "failed"]).first(), 120)
    assert done.status == "done", done.error_detail
    assert done.attempts == 1 and done.worker
    comparison = done.comparison
    assert comparison.response_a.variant_id != comparison.response_b.variant_id
    assert comparison.response_a.temperature != comparison.response_b.temperature
    assert Assignment.objects.get(comparison=comparison).annotator == writer

    # The same message delivered again is skipped; a later job shows the worker got past it.
    from sampling.tasks import generate_pairs

    generate_pairs.apply_async(args=[[job.pk]])
    later = services.prompt_submit(annotator=AnnotatorFactory(), batch=batch, text="Name a large ocean.")
    wait_for(lambda: GenerationJob.objects.filter(pk=later.pk, status__in=["done", "failed"]).exists(), 120)
    assert Comparison.objects.count() == 2
    assert GenerationJob.objects.get(pk=job.pk).attempts == 1


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_a_job_survives_its_worker_being_killed(
    postgres, redis_url, transactional_db, settings, endpoint_variants, server
):
    """SIGKILL the pool process mid-request: the message comes back (acks_late, reject on worker
    lost), the next delivery waits until the dead run's heartbeat is stale, then takes the job over."""
    from config.celery import app

    settings.PREFLAB_SAMPLING_INLINE = False
    app.conf.broker_url = redis_url
    app.conf.task_always_eager = False
    app.control.purge()
    server.set("slow", delay=30)
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "REDIS_URL": redis_url,
        "PREFLAB_SAMPLING_HEARTBEAT_SECONDS": "0.5",
        "PREFLAB_SAMPLING_STALE_SECONDS": "2",
        "PREFLAB_OPENAI_READ_TIMEOUT": "60",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            "sampling",
            "-P",
            "prefork",
            "-c",
            "1",
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"killed-{uuid.uuid4().hex[:8]}@%h",
            "-l",
            "warning",
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
        pid = int(running.worker.rsplit(":", 1)[1])
        assert pid != worker.pid  # the pool child, not the main process
        os.kill(pid, signal.SIGKILL)
        server.set("varied")

        done = wait_for(lambda: GenerationJob.objects.filter(pk=job.pk, status__in=["done", "failed"]).first(), 90)
        assert done.status == "done", done.error_detail
        assert done.attempts == 2
        assert Comparison.objects.count() == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
        app.control.purge()
