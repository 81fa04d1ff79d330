"""Reward-model training hyper-parameters (pure; imports neither torch nor Django).

Kept apart from the training loop so that validating a run's settings in a web request, the API's
schema and the forms never import torch (seconds of start-up in a fresh server process).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from preference_data.rules import MARGIN_TABLES


@dataclass
class TrainingConfig:
    """Training hyper-parameters. The defaults are Llama 2's.

    Section 3.2.2 gives the schedule (1 epoch, max lr 1e-5, cosine to 10 %, warm-up 3 % of steps and
    at least 5, 512 pairs per batch); the reward model otherwise reuses the pre-training optimizer
    settings of section 2.2 (AdamW, betas 0.9/0.95, eps 1e-5, weight decay 0.1, clipping at 1.0).
    ``micro_batch_pairs`` only trades memory for speed: gradients are accumulated up to
    ``batch_pairs`` either way.
    """

    learning_rate: float = 1e-5
    min_lr_ratio: float = 0.1
    warmup_ratio: float = 0.03
    min_warmup_steps: int = 5
    epochs: int = 1
    batch_pairs: int = 512
    micro_batch_pairs: int = 8
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-5
    max_grad_norm: float | None = 1.0  # None: no clipping (the norm is still reported)
    max_length: int = 1024
    margin_table: str = "small"
    seed: int = 0
    # bf16 autocast is applied on CUDA only: CPU autocast is slow and changes results for no gain.
    bf16: bool = True
    gradient_checkpointing: bool = False
    # Dropout adds noise to the reward difference that the loss is computed on (TRL disables it too).
    disable_dropout: bool = True
    # Save a resumable checkpoint every N optimizer steps (0: only when cancelled).
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    eval_batch_size: int = 32
    # None: CUDA when available, else CPU.
    device: str | None = None

    def __post_init__(self) -> None:
        if self.margin_table not in MARGIN_TABLES:
            raise ValueError(f"margin_table must be one of {list(MARGIN_TABLES)}")
        if min(self.batch_pairs, self.micro_batch_pairs, self.epochs, self.max_length) < 1:
            raise ValueError("batch_pairs, micro_batch_pairs, epochs and max_length must be positive")

    @property
    def micro_batch(self) -> int:
        """Pairs per forward pass (never more than the effective batch)."""
        return min(self.micro_batch_pairs, self.batch_pairs)

    @property
    def grad_accum_steps(self) -> int:
        """Micro-batches per optimizer step; the effective batch rounds up to whole micro-batches."""
        return math.ceil(self.batch_pairs / self.micro_batch)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
