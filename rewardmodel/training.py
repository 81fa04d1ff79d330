"""Reward-model training after Llama 2 (section 3.2.2): margin ranking loss and a resumable loop.

No Django imports: the Celery task loads the comparisons, turns them into `PreferencePair`s and calls
`train_reward_model`, passing callbacks that write progress to the database and read a cancel flag.

The loop is deliberately small (in the spirit of nanoGPT's ``train.py`` and TRL's reward trainer):

* Each micro-batch puts the chosen and the rejected sequences into one padded batch, so a pair's two
  rewards come from a single forward pass through the same weights.
* Pairs are grouped by length into micro-batches, which are shuffled with the run's seed: little
  padding, yet no systematic short-to-long order. Micro-batches are accumulated into optimizer steps
  of ``batch_pairs`` pairs (Llama 2: 512 pairs, i.e. 1024 rows).
* The learning rate is a pure function of the step (`lr_at`), so resuming needs no scheduler object.
* Checkpoints are Hugging Face directories (``save_pretrained``, safetensors) plus the optimizer
  state, ``preflab.json`` and a model card (``README.md``, `rewardmodel.model_card`); they are
  written to a temporary directory and renamed into place, so a directory named
  ``checkpoint-<step>`` is always complete. Resuming restores weights, optimizer,
  step, running metrics and RNG states and recomputes the (seeded) data order, so an interrupted
  and resumed run ends with the same weights as an uninterrupted one.

`train_reward_model` is the loop, read top to bottom: prepare the output directory (or return a
finished run), load model and data, `restore` from the newest checkpoint, then per optimizer step
set the learning rate, `train_step`, record, maybe `save_checkpoint`; at the end `evaluate` and
`save_final_model`. Each step is a top-level function that can be read and tested on its own.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    set_seed,
)

from preference_data.rules import margin_for  # Llama 2 Table 27, shared with the dataset builder
from rewardmodel.chat_format import prepare_tokenizer
from rewardmodel.evaluation import pairs_report, score_pairs
from rewardmodel.hyperparameters import TrainingConfig
from rewardmodel.model_card import CHECKPOINT_FILE, MODEL_CARD_FILE, model_card
from rewardmodel.scoring import Message, encode_many, pad_batch

logger = logging.getLogger(__name__)

FINAL_DIR = "final"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_OPTIMIZER_FILE = "optimizer.pt"
# Config fields that change where and how often things are saved, not what is learned: a run may be
# resumed with different values for these.
_RESUMABLE_CONFIG_CHANGES = frozenset(
    {"checkpoint_every", "keep_checkpoints", "eval_batch_size", "device", "gradient_checkpointing"}
)


def margin_ranking_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | float) -> torch.Tensor:
    """Llama 2's binary ranking loss: mean of ``-log(sigmoid(r_chosen - r_rejected - margin))``.

    ``logsigmoid`` keeps it finite for large negative differences, where ``log(sigmoid(x))`` underflows.
    """
    return -F.logsigmoid(r_chosen - r_rejected - margin).mean()


@dataclass(frozen=True)
class PreferencePair:
    """One training or evaluation comparison, already decided (majority vote) by the annotators.

    Mirrors the dataset builder's `preference_data.rules.ExportRow`. ``context`` is the dialogue before
    the compared responses (earlier turns included), ending with the user turn. ``strength`` is ""
    when unknown (imported data), which means margin 0. ``margin``, when set, overrides the config's
    margin table for this pair. ``safety_label`` is one of ``evaluation.SAFETY_BINS`` on safety data
    and empty (or None) otherwise.
    """

    context: Sequence[Message]
    chosen: str
    rejected: str
    strength: str = "negligibly_better"
    margin: float | None = None
    safety_label: str | None = None
    batch_id: str | None = None
    pair_id: str = ""


@dataclass
class TrainingResult:
    """What `train_reward_model` hands back. ``path`` is the final model, or on cancel the checkpoint."""

    status: str  # "completed" or "cancelled"
    steps: int
    total_steps: int
    metrics: dict[str, Any]
    path: Path
    # The held-out rewards behind metrics["eval"], in eval_pairs' order (chosen, rejected); kept out of
    # the metrics, which are written into every checkpoint.
    eval_rewards: tuple[list[float], list[float]] | None = None


def warmup_steps(total_steps: int, cfg: TrainingConfig) -> int:
    """Llama 2: warm-up for 3 % of the steps, but at least 5."""
    return max(cfg.min_warmup_steps, math.ceil(cfg.warmup_ratio * total_steps))


def lr_at(step: int, total_steps: int, cfg: TrainingConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based) out of ``total_steps``.

    Linear warm-up reaching the maximum at the last warm-up step, then a cosine decay that reaches
    ``min_lr_ratio`` of the maximum exactly at the last step (``get_cosine_schedule_with_warmup``
    decays to zero, not to a floor). A run shorter than its warm-up never reaches the maximum.
    """
    peak = cfg.learning_rate
    warmup = warmup_steps(total_steps, cfg)
    if step < warmup:
        return peak * (step + 1) / warmup
    floor = peak * cfg.min_lr_ratio
    progress = min(1.0, (step - warmup) / max(1, total_steps - 1 - warmup))
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def length_grouped_batches(lengths: Sequence[int], micro_batch: int, seed: int) -> list[list[int]]:
    """Indices grouped into micro-batches of similar length, in a seeded random order.

    A seeded shuffle first, then a stable sort by length: pairs of equal length land in random
    buckets rather than in input order. The buckets themselves are then shuffled.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order.sort(key=lambda i: lengths[i])
    buckets = [order[i : i + micro_batch] for i in range(0, len(order), micro_batch)]
    rng.shuffle(buckets)
    return buckets


def plan_steps(lengths: Sequence[int], cfg: TrainingConfig) -> list[list[list[int]]]:
    """The whole run's data order: per optimizer step, its micro-batches of pair indices.

    A pure function of the lengths and the config, which is why a resumed run sees the same order.
    """
    steps: list[list[list[int]]] = []
    for epoch in range(cfg.epochs):
        buckets = length_grouped_batches(lengths, cfg.micro_batch, seed=cfg.seed * 1_000_003 + epoch)
        steps += [buckets[i : i + cfg.grad_accum_steps] for i in range(0, len(buckets), cfg.grad_accum_steps)]
    return steps


def _fingerprint(pairs: Sequence[PreferencePair], cfg: TrainingConfig) -> str:
    """Identifies what a run learns from, so a checkpoint is never resumed with other data or settings."""
    digest = hashlib.sha256()
    learning = {k: v for k, v in cfg.to_dict().items() if k not in _RESUMABLE_CONFIG_CHANGES}
    digest.update(json.dumps(learning, sort_keys=True).encode())
    for p in pairs:
        fields = [list(map(dict, p.context)), p.chosen, p.rejected, p.strength, p.margin]
        digest.update(json.dumps(fields, sort_keys=True).encode())
    return digest.hexdigest()


def _rng_state() -> dict[str, Any]:
    """All RNG states as JSON (torch states as base64), for exact continuation after a resume."""

    def encode(state: torch.Tensor) -> str:
        return base64.b64encode(state.numpy().tobytes()).decode()

    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), pos, has_gauss, cached],
        "torch": encode(torch.get_rng_state()),
        "cuda": [encode(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    def decode(text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(decode(state["torch"]))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([decode(s) for s in state["cuda"]])


def _fsync_tree(root: Path) -> None:
    for path in [*root.rglob("*"), root]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Write a directory next to ``target``, flush it to disk, then rename it into place."""
    tmp = target.with_name(f".tmp-{target.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    _fsync_tree(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def _checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``output_dir``, oldest first."""
    found = []
    for path in output_dir.iterdir() if output_dir.is_dir() else []:
        match = _CHECKPOINT_RE.match(path.name)
        if match and (path / CHECKPOINT_FILE).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_checkpoint_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``preflab.json`` of a checkpoint or final model directory."""
    return json.loads((Path(path) / CHECKPOINT_FILE).read_text())


def _check_same_run(info: dict[str, Any], fingerprint: str, path: Path) -> None:
    if info.get("fingerprint") != fingerprint:
        raise ValueError(
            f"{path} was written by a run with different data or settings; "
            "use another output_dir or pass resume=False to start over"
        )


def _load_tokenizer(source: str | os.PathLike[str]) -> PreTrainedTokenizerBase:
    # A chat template, left truncation and a pad token (the end-of-sequence token when it has none),
    # saved with every checkpoint so plain transformers reads inputs as Preflab does.
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(source))
    if tokenizer.pad_token_id is None:
        raise ValueError(f"the tokenizer at {source} has neither a pad nor an end-of-sequence token")
    return tokenizer


def _load_model(
    source: str | os.PathLike[str], tokenizer: PreTrainedTokenizerBase, cfg: TrainingConfig
) -> PreTrainedModel:
    # float32 master weights; on CUDA the forward pass runs under bf16 autocast.
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1, dtype=torch.float32)
    text_config = model.config.get_text_config()
    # Decoder classification heads read the reward at the last token that is not padding.
    text_config.pad_token_id = tokenizer.pad_token_id
    if hasattr(text_config, "use_cache"):
        text_config.use_cache = False
    if cfg.disable_dropout:
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = 0.0
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def _encode_pairs(
    tokenizer: PreTrainedTokenizerBase, pairs: Sequence[PreferencePair], max_length: int, chunk: int = 4096
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Token ids of every chosen and rejected input, as int32 arrays.

    Tokenized a chunk at a time and kept as arrays: as Python lists of ints a 100k-pair dataset of
    ~800-token examples would take about 6 GB, as int32 arrays under 1 GB.
    """
    chosen: list[np.ndarray] = []
    rejected: list[np.ndarray] = []
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        items = [(p.context, p.chosen) for p in part] + [(p.context, p.rejected) for p in part]
        encoded = [np.asarray(ids, dtype=np.int32) for ids in encode_many(tokenizer, items, max_length)]
        chosen += encoded[: len(part)]
        rejected += encoded[len(part) :]
    return chosen, rejected


def _optimizer(model: PreTrainedModel, cfg: TrainingConfig, device: torch.device) -> torch.optim.AdamW:
    # Biases and normalisation weights (the 1-D parameters) are not decayed, as usual for transformers.
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    # The fused kernel (one pass over all parameters) is several times faster than the per-tensor
    # loop PyTorch falls back to on CPU; it exists for CPU and CUDA.
    return torch.optim.AdamW(
        groups,
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_eps,
        fused=device.type in ("cpu", "cuda"),
    )


@dataclass(frozen=True)
class TrainingData:
    """The training pairs as the loop consumes them: token ids, margins and the padding token.

    ``chosen_ids[i]`` and ``rejected_ids[i]`` are the inputs of pair ``i``; ``margins`` lives on the
    training device so a micro-batch's margins are a single indexing operation.
    """

    chosen_ids: list[np.ndarray]
    rejected_ids: list[np.ndarray]
    margins: torch.Tensor
    pad_token_id: int

    def lengths(self) -> list[int]:
        """Per pair, the longer of its two inputs: what a micro-batch is padded to."""
        return [max(len(c), len(r)) for c, r in zip(self.chosen_ids, self.rejected_ids, strict=True)]


def encode_training_data(
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    *,
    max_length: int,
    margin_table: str,
    device: torch.device,
) -> TrainingData:
    """Tokenize every pair once, up front, and look up its margin (its own, else the table's)."""
    chosen_ids, rejected_ids = _encode_pairs(tokenizer, pairs, max_length)
    margins = torch.tensor(
        [p.margin if p.margin is not None else margin_for(p.strength, margin_table) for p in pairs],
        dtype=torch.float32,
        device=device,
    )
    return TrainingData(chosen_ids, rejected_ids, margins, tokenizer.pad_token_id)


@dataclass(frozen=True)
class StepResult:
    """One optimizer step as its forward passes saw it, i.e. before its update."""

    loss: float  # mean margin ranking loss over the step's pairs
    correct: int  # pairs whose chosen response got the higher reward
    pairs: int
    tokens: int  # non-padding inputs
    grad_norm: float  # before clipping

    @property
    def accuracy(self) -> float:
        return self.correct / self.pairs


@dataclass
class RunState:
    """Everything besides weights and optimizer that a resumed run must continue from.

    Saved field by field in every ``preflab.json`` (``state``) and read back by `restore`.
    """

    step: int = 0
    pairs_seen: int = 0
    loss_sum: float = 0.0  # sum over steps of (mean loss of the step x pairs in the step)
    correct: int = 0
    tokens_seen: int = 0
    train_seconds: float = 0.0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)

    def record(self, result: StepResult, lr: float, seconds: float) -> None:
        """Count a completed optimizer step."""
        self.step += 1
        self.pairs_seen += result.pairs
        self.loss_sum += result.loss * result.pairs
        self.correct += result.correct
        self.tokens_seen += result.tokens
        self.train_seconds += seconds
        self.history.append(
            {
                "step": self.step,
                "loss": result.loss,
                "accuracy": result.accuracy,
                "lr": lr,
                "grad_norm": result.grad_norm,
            }
        )

    def train_metrics(self) -> dict[str, Any]:
        seen = max(1, self.pairs_seen)
        return {
            "train_loss": self.loss_sum / seen,
            "train_accuracy": self.correct / seen,
            "last_loss": self.history[-1]["loss"] if self.history else None,
            "pairs_seen": self.pairs_seen,
            "tokens_seen": self.tokens_seen,
            "train_seconds": self.train_seconds,
            "pairs_per_second": self.pairs_seen / self.train_seconds if self.train_seconds else None,
            "tokens_per_second": self.tokens_seen / self.train_seconds if self.train_seconds else None,
        }


@dataclass(frozen=True)
class RunInfo:
    """What stays fixed during a run: where it saves, and what each ``preflab.json`` records of it.

    ``setup`` (sizes, batch shape, schedule length, window, device) heads every metrics dict.
    """

    output_dir: Path
    cfg: TrainingConfig
    base_model: str
    fingerprint: str
    dataset_manifest: dict[str, Any]
    total_steps: int
    setup: dict[str, Any]

    def metrics(self, state: RunState) -> dict[str, Any]:
        return {**self.setup, **state.train_metrics()}


# --- The run's directory -------------------------------------------------------------------------


def prepare_output_dir(output_dir: Path, *, resume: bool) -> None:
    """Create ``output_dir``, drop half-written saves, and with ``resume=False`` an earlier run."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for leftover in output_dir.glob(".tmp-*"):  # from a save interrupted by a crash
        shutil.rmtree(leftover)
    if not resume:
        for _, path in _checkpoints(output_dir):
            shutil.rmtree(path)
        shutil.rmtree(output_dir / FINAL_DIR, ignore_errors=True)


def finished_run(output_dir: Path, fingerprint: str) -> TrainingResult | None:
    """The result of a run that already completed in ``output_dir`` with the same data and settings."""
    final_dir = output_dir / FINAL_DIR
    if not (final_dir / CHECKPOINT_FILE).is_file():
        return None
    info = read_checkpoint_info(final_dir)
    _check_same_run(info, fingerprint, final_dir)
    return TrainingResult("completed", info["step"], info["total_steps"], info["metrics"], final_dir)


def newest_checkpoint(output_dir: Path, fingerprint: str) -> Path | None:
    """The newest complete checkpoint in ``output_dir``, which must be of this same run."""
    checkpoints = _checkpoints(output_dir)
    if not checkpoints:
        return None
    latest = checkpoints[-1][1]
    _check_same_run(read_checkpoint_info(latest), fingerprint, latest)
    return latest


def _training_window(model: PreTrainedModel, cfg: TrainingConfig) -> int:
    """``cfg.max_length``, unless the model has fewer positions."""
    positions = getattr(model.config.get_text_config(), "max_position_embeddings", None) or cfg.max_length
    return min(cfg.max_length, positions)


# --- The steps of the loop -----------------------------------------------------------------------


def restore(checkpoint: Path, optimizer: torch.optim.Optimizer, device: torch.device) -> RunState:
    """Continue from ``checkpoint``: optimizer moments, step, running metrics and RNG states.

    The weights and tokenizer come from the same directory, loaded like a base model (`_load_model`).
    There is no scheduler state: the learning rate is a pure function of the step (`lr_at`), and
    the data order a pure function of the data and the config (`plan_steps`). The RNG states are
    set last, after loading has consumed whatever randomness it does, so the run continues exactly
    where the checkpoint left it.
    """
    info = read_checkpoint_info(checkpoint)
    optimizer.load_state_dict(torch.load(checkpoint / _OPTIMIZER_FILE, map_location=device, weights_only=True))
    state = RunState(**info["state"])
    _set_rng_state(info["rng_state"])
    logger.info("resuming reward-model training from %s (step %d of %d)", checkpoint, state.step, info["total_steps"])
    return state


def train_step(
    model: PreTrainedModel,
    optimizer: torch.optim.Optimizer,
    data: TrainingData,
    micro_batches: Sequence[Sequence[int]],
    cfg: TrainingConfig,
    device: torch.device,
    *,
    should_stop: Callable[[], bool] | None = None,
) -> StepResult | None:
    """One optimizer step: accumulate the margin ranking loss over ``micro_batches``, clip, update.

    The learning rate must already be set on ``optimizer``. ``should_stop`` is polled before every
    micro-batch; when it returns true the gradients accumulated so far are dropped and None is
    returned, leaving weights and optimizer as they were after the previous step.
    """
    use_bf16 = cfg.bf16 and device.type == "cuda"
    step_pairs = sum(len(mb) for mb in micro_batches)
    step_loss, step_correct, step_tokens = 0.0, 0, 0
    for micro in micro_batches:
        if should_stop is not None and should_stop():
            optimizer.zero_grad(set_to_none=True)
            return None
        batch = pad_batch(
            [data.chosen_ids[i] for i in micro] + [data.rejected_ids[i] for i in micro], data.pad_token_id, device
        )
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            rewards = model(**batch).logits.squeeze(-1).float()
        r_chosen, r_rejected = rewards.chunk(2)
        # Weighted so the accumulated gradient is that of the mean loss over the whole step,
        # also when the step's last micro-batch is smaller.
        loss = margin_ranking_loss(r_chosen, r_rejected, data.margins[micro]) * (len(micro) / step_pairs)
        loss.backward()
        step_loss += loss.item()
        step_correct += int((r_chosen > r_rejected).sum())
        step_tokens += int(batch["attention_mask"].sum())
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm or math.inf))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(step_loss, step_correct, step_pairs, step_tokens, grad_norm)


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    eval_pairs: Sequence[PreferencePair],
    *,
    max_length: int,
    cfg: TrainingConfig,
) -> tuple[dict[str, Any], list[float], list[float]]:
    """The held-out report (`evaluation.pairs_report`) of the in-memory model, truncated as in
    training, with the chosen and rejected rewards it was computed from."""
    r_chosen, r_rejected = score_pairs(
        model, tokenizer, eval_pairs, max_length=max_length, batch_size=cfg.eval_batch_size
    )
    report = pairs_report(r_chosen, r_rejected, eval_pairs)
    return report, [float(r) for r in r_chosen], [float(r) for r in r_rejected]


def _save(
    target: Path,
    kind: str,
    run: RunInfo,
    state: RunState,
    metrics: dict[str, Any],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    optimizer: torch.optim.Optimizer | None = None,
    rng_state: dict[str, Any] | None = None,
) -> None:
    """Write a Hugging Face directory with ``preflab.json`` and a model card to ``target``, atomically.

    The optimizer and RNG states are only saved in checkpoints (``optimizer``/``rng_state`` given):
    the final model is for scoring, not for resuming.
    """

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / _OPTIMIZER_FILE)
        info = {
            "format": "preflab-reward-model",
            "format_version": 1,
            "kind": kind,
            "base_model": run.base_model,
            "step": state.step,
            "total_steps": run.total_steps,
            "fingerprint": run.fingerprint,
            "config": run.cfg.to_dict(),
            "dataset": run.dataset_manifest,
            "metrics": metrics,
            "state": dataclasses.asdict(state),
            "rng_state": rng_state,
        }
        (tmp / CHECKPOINT_FILE).write_text(json.dumps(info, indent=1))
        (tmp / MODEL_CARD_FILE).write_text(model_card(info, folder=str(target)))

    _write_atomically(target, write)


def save_checkpoint(
    run: RunInfo,
    state: RunState,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    optimizer: torch.optim.Optimizer,
    rng_state: dict[str, Any],
) -> Path:
    """Save ``checkpoint-<step>`` (unless already there) and delete all but the newest few.

    ``rng_state`` is the state to continue from: taken before the step that a cancel interrupts, so
    that step is redone from the same randomness. The directory is written under a temporary name
    and renamed into place (`_write_atomically`), ``preflab.json`` last, so a checkpoint that exists
    is complete.
    """
    target = run.output_dir / f"checkpoint-{state.step}"
    if not target.exists():
        _save(target, "checkpoint", run, state, run.metrics(state), model, tokenizer, optimizer, rng_state)
        for _, old in _checkpoints(run.output_dir)[: -max(1, run.cfg.keep_checkpoints)]:
            shutil.rmtree(old)
    return target


def save_final_model(
    run: RunInfo,
    state: RunState,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    metrics: dict[str, Any],
) -> Path:
    """Save ``final`` (weights, tokenizer, ``preflab.json``), then delete the checkpoints it supersedes."""
    final_dir = run.output_dir / FINAL_DIR
    _save(final_dir, "final", run, state, metrics, model, tokenizer)
    for _, path in _checkpoints(run.output_dir):
        shutil.rmtree(path)
    return final_dir


def _progress_report(
    state: RunState, total_steps: int, *, eta_seconds: float, checkpoint: Path | None
) -> dict[str, Any]:
    """The dict ``on_progress`` receives after an optimizer step (see `train_reward_model`)."""
    return {
        **state.history[-1],
        "total_steps": total_steps,
        "pairs_seen": state.pairs_seen,
        "tokens_per_second": state.tokens_seen / max(state.train_seconds, 1e-9),
        "pairs_per_second": state.pairs_seen / max(state.train_seconds, 1e-9),
        "elapsed_seconds": state.train_seconds,
        "eta_seconds": eta_seconds,
        "checkpoint": str(checkpoint) if checkpoint else None,
    }


# --- The loop ------------------------------------------------------------------------------------


def train_reward_model(
    cfg: TrainingConfig,
    model_dir: str | os.PathLike[str],
    train_pairs: Sequence[PreferencePair],
    eval_pairs: Sequence[PreferencePair] | None = None,
    *,
    output_dir: str | os.PathLike[str],
    dataset_manifest: dict[str, Any] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resume: bool = True,
) -> TrainingResult:
    """Train a scalar reward model initialised from ``model_dir`` on ``train_pairs``.

    ``on_progress`` receives a dict after every optimizer step: step (completed steps), total_steps,
    loss and accuracy (of that step's pairs, as seen by its forward passes, i.e. before its update),
    lr, grad_norm (before clipping), pairs_seen, tokens_per_second and pairs_per_second (non-padding
    inputs over training time, all sessions of a resumed run), elapsed_seconds, eta_seconds and
    checkpoint (the directory saved after this step, or None).

    ``should_stop`` is polled before every micro-batch; when it returns true the run saves a
    checkpoint at the last completed optimizer step (a partly accumulated step is dropped and redone
    on resume) and returns with status "cancelled".

    With ``resume`` (the default) a finished run in ``output_dir`` is returned as is, without
    training, and an unfinished one continues from its latest checkpoint; either must have been
    written with the same data and learning settings. ``resume=False`` deletes earlier checkpoints
    and the final model in ``output_dir`` first. The final model (``output_dir/final``) holds the
    weights, the tokenizer (its chat template, ``truncation_side="left"`` and ``model_max_length``
    set to the training window: `chat_format`'s rule, so plain ``apply_chat_template`` reproduces
    Preflab's inputs), ``preflab.json`` with the config, ``dataset_manifest``, metrics and per-step
    history, and a model card (``README.md``); once it is written the intermediate checkpoints are
    deleted.
    """
    if not train_pairs:
        raise ValueError("no training pairs")
    output_dir = Path(output_dir)
    fingerprint = _fingerprint(train_pairs, cfg)
    prepare_output_dir(output_dir, resume=resume)
    if resume and (finished := finished_run(output_dir, fingerprint)) is not None:
        return finished
    checkpoint = newest_checkpoint(output_dir, fingerprint)

    # Model, data and optimizer. A resumed run loads its weights from the checkpoint.
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    set_seed(cfg.seed)  # before loading: the new reward head is initialised randomly
    tokenizer = _load_tokenizer(checkpoint or model_dir)
    model = _load_model(checkpoint or model_dir, tokenizer, cfg).to(device)
    max_length = _training_window(model, cfg)
    prepare_tokenizer(tokenizer, max_length=max_length)
    data = encode_training_data(
        tokenizer, train_pairs, max_length=max_length, margin_table=cfg.margin_table, device=device
    )
    plan = plan_steps(data.lengths(), cfg)
    total_steps = len(plan)
    optimizer = _optimizer(model, cfg, device)
    state = restore(checkpoint, optimizer, device) if checkpoint else RunState()

    run = RunInfo(
        output_dir=output_dir,
        cfg=cfg,
        base_model=str(model_dir),
        fingerprint=fingerprint,
        dataset_manifest=dataset_manifest or {},
        total_steps=total_steps,
        setup={
            "n_train_pairs": len(train_pairs),
            "n_eval_pairs": len(eval_pairs or ()),
            "micro_batch_pairs": cfg.micro_batch,
            "grad_accum_steps": cfg.grad_accum_steps,
            "effective_batch_pairs": cfg.micro_batch * cfg.grad_accum_steps,
            "total_steps": total_steps,
            "warmup_steps": warmup_steps(total_steps, cfg),
            "max_length": max_length,
            "device": str(device),
        },
    )

    model.train()
    session_seconds, session_steps = 0.0, 0  # this session only, for the time-left estimate
    while state.step < total_steps:
        step_start = time.monotonic()
        step_rng_state = _rng_state()  # a cancelled, partly accumulated step is redone from here
        lr = lr_at(state.step, total_steps, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr

        result = train_step(model, optimizer, data, plan[state.step], cfg, device, should_stop=should_stop)
        if result is None:  # cancelled: keep what the completed steps learned
            path = save_checkpoint(run, state, model, tokenizer, optimizer, step_rng_state)
            return TrainingResult("cancelled", state.step, total_steps, run.metrics(state), path)

        step_seconds = time.monotonic() - step_start
        session_seconds += step_seconds
        session_steps += 1
        state.record(result, lr, step_seconds)

        # The last step needs no checkpoint: the final model is saved right after the loop.
        saved = None
        if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < total_steps:
            saved = save_checkpoint(run, state, model, tokenizer, optimizer, _rng_state())
        if on_progress is not None:
            eta_seconds = session_seconds / session_steps * (total_steps - state.step)
            on_progress(_progress_report(state, total_steps, eta_seconds=eta_seconds, checkpoint=saved))

    metrics = run.metrics(state)
    eval_rewards = None
    if eval_pairs:
        metrics["eval"], *rewards = evaluate(model, tokenizer, eval_pairs, max_length=max_length, cfg=cfg)
        eval_rewards = (rewards[0], rewards[1])
    final_dir = save_final_model(run, state, model, tokenizer, metrics)
    return TrainingResult("completed", state.step, total_steps, metrics, final_dir, eval_rewards)
