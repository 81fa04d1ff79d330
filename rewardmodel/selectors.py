"""Reads of reward-model training: base checkpoints, runs, their curves and evaluations, best-of-K
previews, and a dataset's pairs as the trainer takes them. Pages and the API read through here,
researchers only."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from django.db.models import Count, QuerySet
from django.utils import timezone

from accounts.models import User
from accounts.selectors import require_researcher
from config.exceptions import Conflict, Gone
from preference_data import rules
from preference_data.models import DatasetBuild, ExternalSource, JobStatus

from .models import (
    BaseCheckpoint,
    BestOfKPreview,
    RunEvaluation,
    RunStatus,
    TrainingRun,
)

if TYPE_CHECKING:
    from .training import PreferencePair

# Llama 2's reported accuracies, shown beside Preflab's tables for the shape to expect (not as targets).
LLAMA2_TABLE_8 = [
    {"label": "Meta Safety test set, Safety RM", "values": [94.3, 76.3, 65.7, 55.3], "avg": 64.5},
    {"label": "Meta Helpful test set, Helpfulness RM", "values": [80.7, 67.5, 60.9, 54.7], "avg": 63.2},
]
LLAMA2_TABLE_29 = {"label": "Meta Safety test set, Safety RM", "values": [94.3, 56.9, 59.9]}


def _researcher(user: User) -> None:
    require_researcher(user, to="train and use reward models")


def base_checkpoints_for(user: User) -> QuerySet[BaseCheckpoint]:
    _researcher(user)
    return BaseCheckpoint.objects.all()


def runs_for(user: User) -> QuerySet[TrainingRun]:
    _researcher(user)
    return TrainingRun.objects.select_related("dataset", "base_checkpoint", "created_by")


def evaluations_for(user: User) -> QuerySet[RunEvaluation]:
    _researcher(user)
    return RunEvaluation.objects.select_related("run", "dataset")


def best_of_k_previews_for(user: User) -> QuerySet[BestOfKPreview]:
    """Every researcher sees every preview, as with runs; newest first."""
    _researcher(user)
    return BestOfKPreview.objects.select_related("variant", "run", "safety_run", "created_by")


def trainable_datasets() -> QuerySet[DatasetBuild]:
    return DatasetBuild.objects.filter(status=JobStatus.DONE, pairs__split=rules.TRAIN).distinct()


def scorable_runs(user: User, kind: str | None = None) -> QuerySet[TrainingRun]:
    """Runs with a saved model to score with: finished, or cancelled with a checkpoint."""
    runs = runs_for(user).filter(status__in=[RunStatus.SUCCEEDED, RunStatus.CANCELLED]).exclude(output_path="")
    return runs.filter(kind=kind) if kind else runs


# --- for the pages ------------------------------------------------------------------------------


def evaluable_datasets() -> QuerySet[DatasetBuild]:
    """Finished builds with a held-out split: what a run can be evaluated on."""
    return DatasetBuild.objects.filter(status=JobStatus.DONE, pairs__split=rules.TEST).distinct()


def base_checkpoints_to_train_from(*, user: User) -> QuerySet[BaseCheckpoint]:
    return base_checkpoints_for(user).filter(is_active=True)


def base_checkpoints_with_run_counts(*, user: User) -> QuerySet[BaseCheckpoint]:
    return base_checkpoints_for(user).annotate(n_runs=Count("runs"))


def runs_with_own_evaluation(*, user: User) -> list[TrainingRun]:
    """Every run, each with `own_evaluation`: its evaluation on its own dataset, or None."""
    runs = list(runs_for(user).prefetch_related("evaluations"))
    for run in runs:
        run.own_evaluation = next((e for e in run.evaluations.all() if e.dataset_id == run.dataset_id), None)
    return runs


def run_evaluations(*, run: TrainingRun) -> list[RunEvaluation]:
    """A run's evaluations, the one on its own dataset first."""
    return sorted(run.evaluations.select_related("dataset"), key=lambda e: e.dataset_id != run.dataset_id)


def runs_in_order(*, user: User, run_ids: list[int]) -> list[TrainingRun]:
    """The runs of these ids that the user may see, in the order given, with their evaluations."""
    runs = list(runs_for(user).filter(pk__in=run_ids).prefetch_related("evaluations__dataset"))
    runs.sort(key=lambda r: run_ids.index(r.pk))
    return runs


def best_of_k_preview_for(*, user: User, preview_id: int) -> BestOfKPreview | None:
    return best_of_k_previews_for(user).filter(pk=preview_id).first()


def is_stale(run: TrainingRun, stale_seconds: float, now=None) -> bool:
    """A running run whose worker stopped writing its heartbeat (killed, out of memory, restarted)."""
    if run.status not in (RunStatus.RUNNING, RunStatus.CANCELLING) or run.heartbeat_at is None:
        return False
    return ((now or timezone.now()) - run.heartbeat_at).total_seconds() > stale_seconds


def model_download(run: TrainingRun) -> tuple[Path, str]:
    """The saved model of a run to download, and the name to give it (without extension)."""
    if run.status not in (RunStatus.SUCCEEDED, RunStatus.CANCELLED) or not run.output_path:
        raise Conflict("This run has no saved model yet; download it when it has finished or been cancelled.")
    path = run.model_dir
    if path is None or not path.is_dir():
        raise Gone("This model is no longer in storage.")
    slug = re.sub(r"[^a-z0-9]+", "-", run.name.lower()).strip("-")[:60]
    suffix = "" if run.output_path == "final" else f"-{run.output_path}"
    return path, f"preflab-rm-{run.pk}-{slug}{suffix}"


def run_curves(run: TrainingRun) -> list[dict]:
    """Per-step metrics in step order (the live page's curves and their CSV)."""
    return list(
        run.steps.order_by("step").values(
            "step", "loss", "accuracy", "learning_rate", "grad_norm", "tokens_per_second", "elapsed_seconds"
        )
    )


# --- a dataset's pairs, as the trainer takes them ---------------------------------------------

_FETCH = 5_000


def _export_rows(build: DatasetBuild, split: str) -> Iterator[rules.ExportRow]:
    """A split of a build with its texts and earlier turns, in id order: the rows the exports write
    (preference_data.services.exports reads them; one implementation for both)."""
    from preference_data.services.rows import ExportSql, external_rows, preflab_rows
    from preference_data.services.streaming import read_connection

    names = dict(ExternalSource.objects.values_list("id", "name"))
    with read_connection() as reader:
        sql = ExportSql(reader)
        for chunk in preflab_rows(reader, sql, build, split=split, fetch=_FETCH):
            yield from chunk
        for chunk in external_rows(reader, sql, build, split=split, fetch=_FETCH, names=names):
            yield from chunk


def preference_pairs(build: DatasetBuild, split: str) -> list[PreferencePair]:
    """The build's pairs of one split as `rewardmodel.training.PreferencePair`s, in a fixed order.

    The margin is left to the run's margin table (the build's margins were computed with the
    build's table; a run may choose another). The same build always yields the same list, which is
    what lets a resumed run check it continues on the same data.
    """
    from .training import PreferencePair

    return [
        PreferencePair(
            context=[{"role": m["role"], "content": m["content"]} for m in row.context],
            chosen=row.chosen,
            rejected=row.rejected,
            strength=row.strength,
            safety_label=row.safety_label or None,
            batch_id=row.batch or None,
            pair_id=row.id,
        )
        for row in _export_rows(build, split)
    ]


# --- evaluation reports as the pages' tables ----------------------------------------------------


def _cell(group: dict | None) -> dict:
    group = group or {"n": 0, "correct": 0, "accuracy": None}
    accuracy = group.get("accuracy")
    return {
        "n": group.get("n", 0),
        "correct": group.get("correct", 0),
        "accuracy": accuracy,
        "percent": None if accuracy is None else round(100 * accuracy, 1),
    }


def strength_table(report: dict) -> dict:
    """Llama 2 Table 8's layout: accuracy per strength level, strongest first, then Avg (all pairs).

    ``unknown`` holds pairs without a strength (imported data), which count in Avg only.
    """
    from .evaluation import STRENGTHS

    by_strength = report.get("by_strength", {})
    return {
        "headers": list(STRENGTHS.values()),
        "cells": [_cell(by_strength.get(code)) for code in STRENGTHS],
        "avg": _cell(by_strength.get("avg")),
        "unknown": _cell(by_strength["unknown"]) if "unknown" in by_strength else None,
    }


def safety_table(report: dict) -> dict | None:
    """Llama 2 Table 29's layout: one row per safety bin, its accuracy per strength level and overall,
    beside the paper's Safety RM figure for the bin. None when the test set has no safety labels."""
    from .evaluation import SAFETY_BINS, STRENGTHS

    by_safety = report.get("by_safety")
    if not by_safety:
        return None
    rows = []
    for (code, label), reference in zip(SAFETY_BINS.items(), LLAMA2_TABLE_29["values"], strict=True):
        group = by_safety.get(code, {})
        levels = group.get("by_strength", {})
        rows.append(
            {
                "code": code,
                "label": label,
                "cells": [_cell(levels.get(level)) for level in STRENGTHS],
                "all": _cell(group),
                "llama2": reference,
            }
        )
    return {"headers": list(STRENGTHS.values()), "rows": rows, "all": _cell(by_safety.get("all"))}


def batch_table(report: dict) -> list[dict]:
    return [{"batch": batch, **_cell(group)} for batch, group in (report.get("by_batch") or {}).items()]


def evaluation_csv_rows(report: dict) -> list[list]:
    """Every table of a report as CSV rows: table, group, level, pairs, correct, accuracy."""
    rows: list[list] = [["table", "group", "strength", "pairs", "correct", "accuracy"]]
    strengths = strength_table(report)
    for header, cell in zip(strengths["headers"], strengths["cells"], strict=True):
        rows.append(["by_strength", "", header, cell["n"], cell["correct"], cell["accuracy"]])
    if strengths["unknown"]:
        rows.append(["by_strength", "", "not given", *_csv(strengths["unknown"])])
    rows.append(["by_strength", "", "avg", *_csv(strengths["avg"])])
    safety = safety_table(report)
    for row in safety["rows"] if safety else []:
        for header, cell in zip(safety["headers"], row["cells"], strict=True):
            rows.append(["by_safety", row["label"], header, *_csv(cell)])
        rows.append(["by_safety", row["label"], "all", *_csv(row["all"])])
    for row in batch_table(report):
        rows.append(["by_batch", row["batch"], "", *_csv(row)])
    return rows


PAIR_REWARD_COLUMNS = ["id", "batch", "strength", "safety_label", "reward_chosen", "reward_rejected", "correct"]


def evaluation_pair_rewards(evaluation: RunEvaluation) -> Iterator[dict]:
    """Each scored pair of a finished evaluation with its two rewards, in the evaluation's order; read
    from the file the evaluation wrote, line by line. A Conflict when there is none (not finished, or
    evaluated before Preflab kept per-pair rewards: evaluate again)."""
    path = evaluation.pairs_path
    if evaluation.status != "done" or not path.is_file():
        raise Conflict(
            "This evaluation has no per-pair rewards: it is not finished, or it ran before they were kept "
            "(evaluate the run on this dataset again).",
            field="evaluation",
        )

    def rows() -> Iterator[dict]:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                yield json.loads(line)

    return rows()


def distribution_csv_rows(report: dict) -> list[list]:
    """The reward histograms of chosen and rejected responses on their shared bins."""
    distribution = report.get("distribution") or {}
    edges = distribution.get("edges") or []
    chosen = (distribution.get("chosen") or {}).get("counts") or [0] * max(0, len(edges) - 1)
    rejected = (distribution.get("rejected") or {}).get("counts") or [0] * max(0, len(edges) - 1)
    rows: list[list] = [["bin_low", "bin_high", "chosen", "rejected"]]
    for i in range(len(edges) - 1):
        rows.append([edges[i], edges[i + 1], chosen[i], rejected[i]])
    return rows


def _csv(cell: dict) -> list:
    return [cell["n"], cell["correct"], cell["accuracy"]]
