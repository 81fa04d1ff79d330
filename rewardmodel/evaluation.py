"""Reward-model accuracy in the layouts Llama 2 reports, plus reward distributions.

Everything except `score_pairs` is a pure function over arrays of rewards for the chosen and the
rejected response of each held-out pair, and returns plain JSON-serialisable dicts, so reports can
be stored on a training-run row and drawn by the pages without recomputation. No Django imports.

A pair counts as correct only when ``r_chosen > r_rejected`` strictly: a model that gives both
responses the same reward has not told them apart (ties count as wrong, as in Llama 2).

The strength and safety codes are the dataset builder's (`preference_data.rules`), where an empty
string (or None) means "not given": imported data may have no strength, helpfulness data has no
safety label.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from preference_data import rules as builder
from rewardmodel.scoring import score_many

if TYPE_CHECKING:
    from rewardmodel.training import PreferencePair

# Strength codes in Llama 2 Table 8 column order, with the paper's column headings.
STRENGTHS: dict[str, str] = dict(
    zip(
        builder.STRENGTHS,
        ("Significantly Better", "Better", "Slightly Better", "Negligibly Better / Unsure"),
        strict=True,
    )
)

# Safety bins in Llama 2 Table 29 order, with its headings. A pair whose chosen response is unsafe
# while the other is safe never reaches training or test data, so it has no bin.
SAFETY_BINS: dict[str, str] = dict(
    zip(builder.SAFETY_BINS, ("Safe vs Unsafe", "Both Safe", "Both Unsafe"), strict=True)
)

DEFAULT_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)

Group = dict[str, Any]


def pair_correct(r_chosen: Sequence[float], r_rejected: Sequence[float]) -> np.ndarray:
    """Boolean per pair: did the model rank the chosen response strictly higher?"""
    chosen = np.asarray(r_chosen, dtype=np.float64)
    rejected = np.asarray(r_rejected, dtype=np.float64)
    if chosen.shape != rejected.shape:
        raise ValueError(f"{chosen.shape[0]} chosen rewards but {rejected.shape[0]} rejected rewards")
    return chosen > rejected


def accuracy(r_chosen: Sequence[float], r_rejected: Sequence[float]) -> float | None:
    """Fraction of pairs ranked correctly; None (not NaN, which JSON cannot hold) when empty."""
    return _group(pair_correct(r_chosen, r_rejected))["accuracy"]


def _group(correct: np.ndarray, label: str | None = None) -> Group:
    n = int(correct.size)
    hits = int(correct.sum())
    group: Group = {"n": n, "correct": hits, "accuracy": hits / n if n else None}
    if label is not None:
        group["label"] = label
    return group


def _codes(values: Sequence[str | None], allowed: dict[str, str], what: str, n: int) -> np.ndarray:
    """The codes as an array with "" for "not given", after checking every given one is known."""
    codes = np.asarray([value or "" for value in values], dtype=object)
    if codes.shape != (n,):
        raise ValueError(f"one {what} per pair is required")
    unknown = {v for v in codes if v and v not in allowed}
    if unknown:
        raise ValueError(f"unknown {what} {sorted(unknown)}; expected one of {list(allowed)}")
    return codes


def _strength_table(correct: np.ndarray, strengths: np.ndarray) -> dict[str, Group]:
    table = {code: _group(correct[strengths == code], label) for code, label in STRENGTHS.items()}
    if (strengths == "").any():
        table["unknown"] = _group(correct[strengths == ""], "Strength not given")
    table["avg"] = _group(correct, "Avg")
    return table


def accuracy_by_strength(
    r_chosen: Sequence[float], r_rejected: Sequence[float], strengths: Sequence[str | None]
) -> dict[str, Group]:
    """Llama 2 Table 8: accuracy per strength level, then ``"avg"``.

    As in the paper, "avg" is the accuracy over all pairs (weighted by how many pairs each level
    has), not the mean of the four columns: Meta Safety's 94.3/76.3/65.7/55.3 average to 64.5.
    Pairs without a strength (imported data) count in "avg" and get an ``"unknown"`` column,
    present only when there are such pairs.
    """
    correct = pair_correct(r_chosen, r_rejected)
    return _strength_table(correct, _codes(strengths, STRENGTHS, "strength", correct.size))


def accuracy_by_safety(
    r_chosen: Sequence[float],
    r_rejected: Sequence[float],
    safety_labels: Sequence[str | None],
    strengths: Sequence[str | None],
) -> dict[str, Group]:
    """Llama 2 Table 29: accuracy per safety bin, each also split by strength level.

    Pairs without a safety label (helpfulness data) are left out; ``"all"`` covers the labelled ones.
    """
    correct = pair_correct(r_chosen, r_rejected)
    labels = _codes(safety_labels, SAFETY_BINS, "safety label", correct.size)
    strength_codes = _codes(strengths, STRENGTHS, "strength", correct.size)
    table: dict[str, Group] = {}
    for code, label in SAFETY_BINS.items():
        rows = labels == code
        table[code] = {
            **_group(correct[rows], label),
            "by_strength": _strength_table(correct[rows], strength_codes[rows]),
        }
    table["all"] = _group(correct[labels != ""], "All labelled")
    return table


def accuracy_by_batch(
    r_chosen: Sequence[float], r_rejected: Sequence[float], batches: Sequence[str | int | None]
) -> dict[str, Group]:
    """Accuracy per weekly annotation batch (Llama 2 Figure 6's x-axis), keyed by ``str(batch)``.

    Batches appear in order of first occurrence; pairs without a batch are left out.
    """
    correct = pair_correct(r_chosen, r_rejected)
    keys = np.asarray(["" if b is None else str(b) for b in batches], dtype=object)
    if keys.shape != correct.shape:
        raise ValueError("one batch per pair is required")
    order = dict.fromkeys(k for k in keys if k)
    return {key: _group(correct[keys == key]) for key in order}


def _summary(values: np.ndarray, edges: np.ndarray, quantiles: Sequence[float]) -> dict[str, Any]:
    if values.size == 0:
        return {"n": 0, "counts": [0] * (len(edges) - 1)}
    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "quantiles": {f"{q:g}": float(v) for q, v in zip(quantiles, np.quantile(values, quantiles), strict=True)},
        "counts": np.histogram(values, bins=edges)[0].tolist(),
    }


def reward_distribution(
    r_chosen: Sequence[float],
    r_rejected: Sequence[float],
    bins: int = 20,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> dict[str, Any]:
    """Histograms (on shared bin edges, so the two can be overlaid) and quantiles of the rewards.

    Also summarises ``r_chosen - r_rejected``, the quantity the margin in the loss pushes up; its
    spread per strength level shows whether a margin table suits the data.
    """
    chosen = np.asarray(r_chosen, dtype=np.float64)
    rejected = np.asarray(r_rejected, dtype=np.float64)
    both = np.concatenate([chosen, rejected])
    edges = np.histogram_bin_edges(both, bins=bins) if both.size else np.linspace(0.0, 1.0, bins + 1)
    difference = chosen - rejected
    return {
        "edges": edges.tolist(),
        "chosen": _summary(chosen, edges, quantiles),
        "rejected": _summary(rejected, edges, quantiles),
        "difference": {
            "mean": float(difference.mean()) if difference.size else None,
            "median": float(np.median(difference)) if difference.size else None,
        },
    }


def evaluation_report(
    r_chosen: Sequence[float],
    r_rejected: Sequence[float],
    strengths: Sequence[str | None],
    safety_labels: Sequence[str | None] | None = None,
    batches: Sequence[str | int | None] | None = None,
) -> dict[str, Any]:
    """Everything above in one JSON-ready dict: overall accuracy and the per-level/bin/batch tables.

    The safety and batch tables are present only when some pair has a safety label or a batch.
    """
    by_strength = accuracy_by_strength(r_chosen, r_rejected, strengths)
    report: dict[str, Any] = {
        "n": by_strength["avg"]["n"],
        "accuracy": by_strength["avg"]["accuracy"],
        "by_strength": by_strength,
        "distribution": reward_distribution(r_chosen, r_rejected),
    }
    if safety_labels is not None and any(safety_labels):
        report["by_safety"] = accuracy_by_safety(r_chosen, r_rejected, safety_labels, strengths)
    if batches is not None and any(batch not in (None, "") for batch in batches):
        report["by_batch"] = accuracy_by_batch(r_chosen, r_rejected, batches)
    return report


def pairs_report(
    r_chosen: Sequence[float], r_rejected: Sequence[float], pairs: Sequence[PreferencePair]
) -> dict[str, Any]:
    """The `evaluation_report` of scored pairs, with their strengths, safety labels and batches."""
    return evaluation_report(
        r_chosen,
        r_rejected,
        [p.strength for p in pairs],
        [p.safety_label for p in pairs],
        [p.batch_id for p in pairs],
    )


def score_pairs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    *,
    max_length: int | None = None,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Rewards for the chosen and the rejected response of each pair, batched by length."""
    items = [(p.context, p.chosen) for p in pairs] + [(p.context, p.rejected) for p in pairs]
    rewards = np.asarray(score_many(model, tokenizer, items, max_length=max_length, batch_size=batch_size))
    return rewards[: len(pairs)], rewards[len(pairs) :]


def evaluate_pairs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    *,
    max_length: int | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Score held-out pairs and build their `evaluation_report`."""
    r_chosen, r_rejected = score_pairs(model, tokenizer, pairs, max_length=max_length, batch_size=batch_size)
    return pairs_report(r_chosen, r_rejected, pairs)
