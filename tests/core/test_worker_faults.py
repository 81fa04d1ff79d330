"""Faults of the background-work spine (core.jobs), injected for real: a whole worker (main process,
pool children and beat) SIGKILLed in the middle of a training run or of a sampling job and started
again at once, and an export onto a disk that fills up. Nothing of Preflab is mocked.

The workers run with the short timings of `worker_env`: a reconcile tick every second, work whose
heartbeat is 3 s old counts as lost."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
from django.db.models import F
from safetensors.torch import load_file

from annotation.models import Assignment, Comparison, Response
from core import jobs
from preference_data import services as dataset_services
from rewardmodel.models import RunMetric, TrainingRun
from rewardmodel.services import runs
from sampling import services as sampling_services
from sampling.models import GenerationJob
from sampling.variant_backends import EMBEDDED_CHECKPOINT
from tests.conftest import missing_service
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory, ResponseFactory, UserFactory
from tests.preference_data.labelled import rate
from tests.rewardmodel.runs import TINY, minilm_checkpoint, polite_batch, tiny_dataset
from tests.sampling.conftest import make_variant, prompt_batch

from .processes import Worker, wait_until, worker_env

pytestmark = [pytest.mark.services, pytest.mark.slow]

# As worker_env sets them: the reconciler's interval and the staleness limits (training, sampling).
RECONCILE_SECONDS = 1
STALE_SECONDS = 3
# A celery worker with Django, on a shared two-core machine, before it takes its first message.
WORKER_START_SECONDS = 30


@pytest.fixture
def workers(own_redis, tmp_path):
    """Start `celery worker --beat` processes on the test's Redis; all are stopped afterwards."""
    started: list[Worker] = []

    def start(**env: str) -> Worker:
        worker = Worker(worker_env(own_redis.url, **env), tmp_path / "workers").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _finished(model, pk: int, statuses: tuple[str, ...], worker: Worker, timeout: float):
    return wait_until(
        lambda: model.objects.filter(pk=pk, status__in=statuses).first(),
        timeout,
        f"{model.__name__} {pk} did not finish; the worker said:\n{worker.output()}",
    )


# --- a training run -------------------------------------------------------------------------------

# 36 training pairs in micro-batches of 8: 5 steps an epoch, 15 in all, a checkpoint every 3 steps.
TRAINING = {**TINY, "epochs": 3, "checkpoint_every": 3}
TRAINING_SECONDS = 300  # two tiny MiniLM runs side by side on one shared core each, checkpoints included


def _final_weights(run: TrainingRun) -> dict[str, torch.Tensor]:
    run.refresh_from_db()
    assert run.output_path == "final"
    return load_file(run.model_dir / "model.safetensors")


def test_a_run_resumes_from_its_checkpoint_after_the_whole_worker_is_killed_and_ends_as_if_never_interrupted(
    postgres, workers
):
    researcher = UserFactory()
    dataset = tiny_dataset(researcher, [polite_batch(AnnotatorFactory.create_batch(3), 48)])
    base = minilm_checkpoint()

    def start_run(name: str) -> TrainingRun:
        return runs.run_create(
            created_by=researcher, dataset=dataset, base_checkpoint=base, name=name, hyperparameters=TRAINING
        )

    worker = workers()
    run = start_run("killed")  # sent to Redis when it commits, at once here
    wait_until(
        lambda: (
            TrainingRun.objects.filter(
                pk=run.pk, status="running", last_checkpoint_step__gte=TRAINING["checkpoint_every"]
            )
            .filter(step__gt=F("last_checkpoint_step"))
            .exists()
        ),
        WORKER_START_SECONDS + TRAINING_SECONDS,
        f"the run did not get past its first checkpoint; the worker said:\n{worker.output()}",
    )

    worker.kill()  # main process, pool children and beat at once: nobody acknowledges or cleans up
    killed = TrainingRun.objects.get(pk=run.pk)
    assert (killed.status, killed.attempts) == ("running", 1), (
        f"attempt {killed.attempts} before the kill: the reconciler took the live run for a lost one"
    )
    assert 0 < killed.step < killed.total_steps
    resume_from = runs.latest_checkpoint(killed)  # what the next attempt continues from
    checkpoint_step = int(resume_from.removeprefix("checkpoint-"))
    assert checkpoint_step >= TRAINING["checkpoint_every"]
    before = dict(RunMetric.objects.filter(run=run).values_list("step", "pk"))
    assert max(before) >= checkpoint_step  # the steps after the checkpoint (if any yet) are lost

    worker.start()  # at once: the message of the dead delivery is unacknowledged in Redis for 48 h
    twin = start_run("never interrupted")  # same data and hyper-parameters, trained alongside
    done = _finished(
        TrainingRun,
        run.pk,
        ("succeeded", "failed", "cancelled"),
        worker,
        RECONCILE_SECONDS + STALE_SECONDS + WORKER_START_SECONDS + TRAINING_SECONDS,
    )
    assert done.status == "succeeded", done.error
    assert done.attempts == 2 and done.step == done.total_steps
    assert done.dispatch_count >= 2  # sent again by the reconciler, not by Redis' visibility timeout
    after = dict(RunMetric.objects.filter(run=run).values_list("step", "pk"))
    assert list(after) == list(range(1, done.total_steps + 1))
    # The steps up to the checkpoint are the first attempt's; the later ones were trained again.
    assert all(after[step] == before[step] for step in before if step <= checkpoint_step)
    assert all(after[step] != before[step] for step in before if step > checkpoint_step)

    uninterrupted = _finished(TrainingRun, twin.pk, ("succeeded", "failed"), worker, TRAINING_SECONDS)
    assert uninterrupted.status == "succeeded", uninterrupted.error
    assert uninterrupted.attempts == 1
    resumed, reference = _final_weights(done), _final_weights(uninterrupted)
    assert resumed.keys() == reference.keys()
    # Usually bit-identical; but CPU matrix kernels may round differently when the same weights sit at
    # another memory alignment (the resumed run loads them into new buffers), so the last bits can
    # differ. Any real difference (a step trained twice or skipped, another data order, a lost
    # optimizer state) moves weights by orders of magnitude more than this tolerance.
    differing = {
        name: float((resumed[name] - reference[name]).abs().max())
        for name in reference
        if not torch.allclose(resumed[name], reference[name], rtol=1e-4, atol=1e-6)
    }
    assert differing == {}, f"the resumed run's weights differ from the uninterrupted run's: {differing}"


# --- a sampling job -------------------------------------------------------------------------------

# Long enough that sampling the two responses takes several seconds on one idle torch thread (and
# about 40 s on a busy two-core machine), so the worker dies in the middle of it.
MAX_NEW_TOKENS = 192


def test_a_sampling_job_is_taken_over_after_the_whole_worker_is_killed_and_writes_one_pair(
    postgres, workers, embedded_checkpoint, settings
):
    cache = str(embedded_checkpoint.parent)
    settings.PREFLAB_MODEL_CACHE = cache
    common = {"backend": "transformers", "checkpoint_path": EMBEDDED_CHECKPOINT, "max_new_tokens": MAX_NEW_TOKENS}
    variants = [
        make_variant("smollm2-storyteller", system_prompt="You write long, detailed stories.", **common),
        make_variant("smollm2-tutor", system_prompt="You are a patient tutor who explains at length.", **common),
    ]
    batch = prompt_batch(variants, temperatures=(0.7, 1.0))
    writer = AnnotatorFactory()

    worker = workers(PREFLAB_MODEL_CACHE=cache)
    job = sampling_services.prompt_submit(
        annotator=writer, batch=batch, text="Tell me a long story about a lighthouse keeper and a storm."
    )
    wait_until(
        lambda: GenerationJob.objects.filter(pk=job.pk, status="running").exists(),
        WORKER_START_SECONDS + 60,
        f"the job was not taken; the worker said:\n{worker.output()}",
    )
    # The job is claimed before its model loads (about a second from the converted checkpoint):
    # wait for fresh heartbeats past that, so the worker dies while it samples.
    first = GenerationJob.objects.get(pk=job.pk).heartbeat_at
    wait_until(
        lambda: GenerationJob.objects.filter(pk=job.pk, heartbeat_at__gt=first).exists(),
        30,
        f"the job's heartbeat stopped; the worker said:\n{worker.output()}",
    )
    time.sleep(2)

    worker.kill()
    killed = GenerationJob.objects.get(pk=job.pk)
    assert (killed.status, killed.attempts, killed.comparison_id) == ("running", 1, None), killed.error_detail
    assert not Response.objects.exists()

    worker.start()
    done = _finished(
        GenerationJob,
        job.pk,
        ("done", "failed"),
        worker,
        RECONCILE_SECONDS + STALE_SECONDS + WORKER_START_SECONDS + 180,
    )
    assert done.status == "done", done.error_detail
    assert done.attempts == 2
    assert Comparison.objects.get() == done.comparison
    responses = Response.objects.filter(generation__job=job.pk)
    assert sorted(responses.values_list("pk", flat=True)) == sorted(
        [done.comparison.response_a_id, done.comparison.response_b_id]
    )
    assert Response.objects.count() == 2
    assert Assignment.objects.filter(comparison=done.comparison, annotator=writer).count() == 1


# --- an export onto a full disk -------------------------------------------------------------------

DISK_BYTES = 256 * 1024


@pytest.fixture
def small_disk(tmp_path, settings):
    """MEDIA_ROOT on a tmpfs of DISK_BYTES (mounting needs root), unmounted afterwards (lazily when a
    file on it is still open: the test has said so already)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        missing_service(f"needs to mount a small tmpfs (as root): {mounted.stderr.strip() or mounted.returncode}")
    settings.MEDIA_ROOT = str(mount)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount)], check=True, capture_output=True)


def _big_build():
    """A finished build whose export is several times DISK_BYTES: long, incompressible responses."""
    rng = random.Random(7)
    raters = AnnotatorFactory.create_batch(3)
    batch = BatchFactory()
    for i in range(48):
        comparison = ComparisonFactory(
            batch=batch,
            prompt=f"Question {i}: {rng.randbytes(200).hex()}",
            response_a=ResponseFactory(text=rng.randbytes(6000).hex()),
            response_b=ResponseFactory(text=rng.randbytes(6000).hex()),
        )
        rate(comparison, raters, [("a", "better", "")] * 3)
    return tiny_dataset(UserFactory(), [batch], name="too big")


def _handles_under(folder: Path) -> list[str]:
    open_files = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used, closed since
            continue
        if target.startswith(str(folder)):
            open_files.append(target)
    return open_files


@pytest.mark.parametrize("file_type", ["jsonl", "parquet"])
def test_an_export_onto_a_full_disk_fails_saying_so_and_leaves_nothing_behind(transactional_db, small_disk, file_type):
    build = _big_build()
    export = dataset_services.dataset_export_create(created_by=None, build=build, file_type=file_type, enqueue=False)

    # Rows read by a thread of their own a few at a time, written by another: several chunks in flight.
    export = dataset_services.dataset_export_run(export_id=export.pk, fetch=8)

    assert export.status == "failed"
    assert "disk holding the exports is full" in export.error, export.error
    assert not export.directory.exists()
    assert [path for path in small_disk.rglob("*") if not path.is_dir()] == []  # no data file, no .tmp
    assert [t.name for t in threading.enumerate() if t.name.startswith("dataset-export-")] == []
    assert _handles_under(small_disk) == []
    assert os.statvfs(small_disk).f_bfree == os.statvfs(small_disk).f_blocks  # all the space is back

    # A clean-up cut short (the worker died while removing its files) leaves a partial file; the
    # reconciler's step removes the failed export's directory.
    export.directory.mkdir(parents=True)
    (export.directory / f".train.{file_type}.tmp").write_bytes(b"partial")
    summary = jobs.reconcile()
    assert summary["rewardmodel.remove_partial_export_files"] == [export.pk]
    assert not export.directory.exists()
