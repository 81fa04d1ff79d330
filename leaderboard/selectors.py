"""The variant leaderboard: model variants (each version, at each temperature) ranked by the
Bradley–Terry model over the human majority labels, and the same ranking judged by a reward model.

A read, for researchers only (it names the models): the fit runs on the request (a few hundred
comparisons and a few dozen items fit in milliseconds; the bootstrap refits them a couple of hundred
times), the reward-model scores it needs are stored beforehand by rewardmodel's judging work.
The statistics are `leaderboard.bradley_terry` (pure).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from accounts.models import User
from accounts.selectors import require_researcher
from annotation.models import Batch, Comparison, Strength
from rewardmodel.models import ResponseJudging, ResponseReward, TrainingRun

from . import bradley_terry as bt

BY_VARIANT_TEMPERATURE = "variant_temperature"
BY_VARIANT = "variant"
GROUPINGS = (BY_VARIANT_TEMPERATURE, BY_VARIANT)
DEFAULT_MIN_COMPARISONS = 10
DEFAULT_BOOTSTRAP = 200


@dataclass(frozen=True)
class Scope:
    """Which comparisons count: one batch, one week's batches, or every batch (optionally one focus)."""

    batch_id: int | None = None
    week: datetime.date | None = None
    focus: str = ""

    def describe(self, batch: Batch | None = None) -> str:
        parts = []
        if batch is not None:
            parts.append(f"batch {batch.name}")
        elif self.week is not None:
            parts.append(f"week of {self.week:%Y-%m-%d}")
        else:
            parts.append("every batch")
        if self.focus:
            parts.append(f"{self.focus} focus")
        return ", ".join(parts)


@dataclass(frozen=True)
class Item:
    key: str
    variant_id: int
    variant: str
    temperature: float | None


@dataclass
class Entry:
    rank: int
    item: Item
    rating: float | None  # None: no vote yet
    low: float | None  # the bootstrap interval on the rating scale; None without any comparison
    high: float | None
    strength: float
    comparisons: int
    wins: float
    losses: float
    ties: float
    part: int | None  # 1 = the largest connected part of the comparison graph; None: no vote yet
    too_few: bool


@dataclass
class Ranking:
    """One fit: entries best first, the win-rate matrix in the same order, and the warnings."""

    judged_by: str  # "humans" or the run's name
    entries: list[Entry]
    matrix: list[list[float | None]]
    matrix_counts: list[list[int]]
    tie_parameter: float
    n_comparisons: int
    parts: int
    bootstrap_samples: int
    warnings: list[str] = field(default_factory=list)


@dataclass
class Leaderboard:
    scope: Scope
    description: str
    grouping: str
    min_comparisons: int
    humans: Ranking
    n_unlabelled: int  # comparisons in scope without a majority label (open, or tied votes)
    judge: Ranking | None = None
    judge_run: TrainingRun | None = None
    judge_missing: int = 0  # comparisons whose responses the run has not scored
    judge_agreement: float | None = None  # share of labelled, non-tie comparisons the judge called as people did
    judge_agreement_n: int = 0


def _comparisons(scope: Scope):
    comparisons = Comparison.objects.filter(repeat_of__isnull=True)
    if scope.batch_id is not None:
        comparisons = comparisons.filter(batch_id=scope.batch_id)
    if scope.week is not None:
        comparisons = comparisons.filter(batch__week=scope.week)
    if scope.focus:
        comparisons = comparisons.filter(batch__focus=scope.focus)
    return comparisons


def _item(grouping: str, variant_id: int, name: str, version: int, temperature: float) -> Item:
    label = f"{name} v{version}"
    if grouping == BY_VARIANT:
        return Item(key=str(variant_id), variant_id=variant_id, variant=label, temperature=None)
    temperature = round(float(temperature), 2)
    return Item(key=f"{variant_id}@{temperature:g}", variant_id=variant_id, variant=label, temperature=temperature)


def _rank(
    judged_by: str,
    items: list[Item],
    outcomes: list[tuple[int, int, float]],
    *,
    min_comparisons: int,
    bootstrap_samples: int,
    seed: int,
) -> Ranking:
    counts = bt.count_outcomes(len(items), outcomes)
    fitted = bt.fit(counts)
    interval = bt.bootstrap(len(items), outcomes, samples=bootstrap_samples, seed=seed, start=fitted)
    rate, met = bt.win_rates(counts)
    totals = met.sum(axis=1)
    # An item without a single vote yet is not a part of the graph: it is listed as unrated.
    parts = [members for members in bt.components(counts) if totals[members].sum() > 0]
    part_of = {item: number for number, members in enumerate(parts, start=1) for item in members}
    unrated_part = len(parts) + 1
    record = np.zeros((len(items), 3))
    for i, j, w, lo, t in zip(counts.first, counts.second, counts.wins, counts.losses, counts.ties, strict=True):
        record[i] += (w, lo, t)
        record[j] += (lo, w, t)
    # Items of different parts are not comparable: rank inside each part, the largest part first.
    order = sorted(
        range(len(items)),
        key=lambda k: (part_of.get(k, unrated_part), -fitted.strengths[k], items[k].variant, items[k].key),
    )

    def to_rating(theta: float) -> float | None:
        return None if math.isnan(theta) else float(bt.ELO_BASE + bt.ELO_SCALE * theta)

    entries = [
        Entry(
            rank=rank,
            item=items[k],
            rating=to_rating(fitted.strengths[k]) if totals[k] else None,
            low=to_rating(interval.low[k]) if totals[k] else None,
            high=to_rating(interval.high[k]) if totals[k] else None,
            strength=float(fitted.strengths[k]),
            comparisons=int(totals[k]),
            wins=float(record[k, 0]),
            losses=float(record[k, 1]),
            ties=float(record[k, 2]),
            part=part_of.get(k),
            too_few=0 < int(totals[k]) < min_comparisons,
        )
        for rank, k in enumerate(order, start=1)
    ]
    matrix = [[None if math.isnan(rate[i, j]) else float(rate[i, j]) for j in order] for i in order]
    matrix_counts = [[int(met[i, j]) for j in order] for i in order]
    ranking = Ranking(
        judged_by=judged_by,
        entries=entries,
        matrix=matrix,
        matrix_counts=matrix_counts,
        tie_parameter=fitted.tie_parameter,
        n_comparisons=len(outcomes),
        parts=len(parts),
        bootstrap_samples=interval.samples,
    )
    ranking.warnings = _warnings(items, parts, entries, min_comparisons)
    return ranking


def _warnings(items: list[Item], parts: list[list[int]], entries: list[Entry], min_comparisons: int) -> list[str]:
    warnings = []
    if len(parts) > 1:
        named = "; ".join(
            f"part {number}: " + ", ".join(_label(items[k]) for k in members)
            for number, members in enumerate(parts, start=1)
        )
        warnings.append(
            f"The comparison graph is disconnected ({len(parts)} parts): no vote links items in different "
            f"parts, so their ratings cannot be compared with each other. {named}."
        )
    unrated = [entry for entry in entries if entry.comparisons == 0]
    if unrated:
        warnings.append(
            f"{len(unrated)} of {len(entries)} items have no labelled comparison in this scope yet: "
            + ", ".join(_label(e.item) for e in unrated)
            + "."
        )
    few = [entry for entry in entries if entry.too_few]
    if few:
        warnings.append(
            f"{len(few)} of {len(entries)} items have fewer than {min_comparisons} comparisons; their ratings and "
            "intervals rest on little data: " + ", ".join(f"{_label(e.item)} ({e.comparisons})" for e in few) + "."
        )
    return warnings


def _label(item: Item) -> str:
    return item.variant if item.temperature is None else f"{item.variant} at T={item.temperature:g}"


def item_label(item: Item) -> str:
    """How the pages and the CSV name an item: ``name vN at T=0.7``."""
    return _label(item)


def leaderboard_for(
    user: User,
    *,
    scope: Scope,
    grouping: str = BY_VARIANT_TEMPERATURE,
    judge_run_id: int | None = None,
    min_comparisons: int = DEFAULT_MIN_COMPARISONS,
    bootstrap_samples: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> Leaderboard:
    """Rank the scope's variants by the human majority labels (a "negligibly better / unsure" label is
    a tie), and by ``judge_run_id``'s stored rewards when given (the higher reward wins)."""
    require_researcher(user, to="see the variant leaderboard")
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping is one of {GROUPINGS}")
    batch = Batch.objects.filter(pk=scope.batch_id).first() if scope.batch_id is not None else None
    rows = list(
        _comparisons(scope).values_list(
            "label_choice",
            "label_strength",
            "response_a_id",
            "response_a__variant_id",
            "response_a__variant__name",
            "response_a__variant__version",
            "response_a__temperature",
            "response_b_id",
            "response_b__variant_id",
            "response_b__variant__name",
            "response_b__variant__version",
            "response_b__temperature",
        )
    )
    index: dict[str, int] = {}
    items: list[Item] = []

    def position(item: Item) -> int:
        if item.key not in index:
            index[item.key] = len(items)
            items.append(item)
        return index[item.key]

    pairs = []  # (i, j, human result or None, response a, response b)
    for choice, strength, a_id, a_var, a_name, a_ver, a_temp, b_id, b_var, b_name, b_ver, b_temp in rows:
        item_a, item_b = _item(grouping, a_var, a_name, a_ver, a_temp), _item(grouping, b_var, b_name, b_ver, b_temp)
        if item_a.key == item_b.key:
            continue  # the same variant at the same temperature: says nothing about the ranking
        result = None
        if choice:
            result = bt.TIE if strength == Strength.NEGLIGIBLY_BETTER else (bt.WIN if choice == "a" else bt.LOSS)
        pairs.append((position(item_a), position(item_b), result, a_id, b_id))
    human_outcomes = [(i, j, result) for i, j, result, _, _ in pairs if result is not None]
    board = Leaderboard(
        scope=scope,
        description=scope.describe(batch),
        grouping=grouping,
        min_comparisons=min_comparisons,
        humans=_rank(
            "people (majority labels)",
            items,
            human_outcomes,
            min_comparisons=min_comparisons,
            bootstrap_samples=bootstrap_samples,
            seed=seed,
        ),
        n_unlabelled=sum(1 for pair in pairs if pair[2] is None),
    )
    if judge_run_id is not None:
        run = TrainingRun.objects.filter(pk=judge_run_id).first()
        if run is not None:
            _judge(board, run, items, pairs, min_comparisons=min_comparisons, samples=bootstrap_samples, seed=seed)
    return board


def _judge(board: Leaderboard, run: TrainingRun, items, pairs, *, min_comparisons: int, samples: int, seed: int):
    wanted = {response for _, _, _, a, b in pairs for response in (a, b)}
    rewards = dict(ResponseReward.objects.filter(run=run, response_id__in=wanted).values_list("response_id", "reward"))
    outcomes, agree, judged_against_people = [], 0, 0
    for i, j, human, a, b in pairs:
        if a not in rewards or b not in rewards:
            board.judge_missing += 1
            continue
        gap = rewards[a] - rewards[b]
        verdict = bt.TIE if gap == 0 else (bt.WIN if gap > 0 else bt.LOSS)
        outcomes.append((i, j, verdict))
        if human in (bt.WIN, bt.LOSS):
            judged_against_people += 1
            agree += verdict == human
    board.judge_run = run
    board.judge = _rank(
        f"reward model {run.name}",
        items,
        outcomes,
        min_comparisons=min_comparisons,
        bootstrap_samples=samples,
        seed=seed,
    )
    if board.judge_missing:
        board.judge.warnings.insert(
            0,
            f"{board.judge_missing} comparisons have responses {run.name} has not scored yet: judge this scope "
            "again to include them.",
        )
    board.judge_agreement_n = judged_against_people
    board.judge_agreement = agree / judged_against_people if judged_against_people else None


def leaderboard_choices(user: User) -> dict:
    """What the leaderboard's form offers: batches, weeks, reward models with a saved model, and the
    latest judging of each (run, batch) so the page can say what is scored."""
    require_researcher(user, to="see the variant leaderboard")
    from rewardmodel.models import RunStatus

    runs = TrainingRun.objects.filter(status__in=(RunStatus.SUCCEEDED, RunStatus.CANCELLED)).exclude(output_path="")
    return {
        "batches": list(Batch.objects.order_by("-week", "name")),
        "weeks": list(Batch.objects.order_by("-week").values_list("week", flat=True).distinct()),
        "runs": list(runs.order_by("-created_at")),
    }


def judgings_for(user: User, *, run_id: int | None, batch_id: int | None) -> list[ResponseJudging]:
    """The latest judgings of a run over a batch (and over every batch), newest first."""
    require_researcher(user, to="see the variant leaderboard")
    if run_id is None:
        return []
    judgings = ResponseJudging.objects.filter(run_id=run_id).select_related("batch")
    if batch_id is not None:
        judgings = judgings.filter(batch_id__in=[batch_id]) | judgings.filter(batch__isnull=True)
    return list(judgings.order_by("-created_at", "-id")[:5])


def ranking_rows(ranking: Ranking) -> Iterable[dict]:
    """One flat row per item (the CSV of a ranking)."""
    for entry in ranking.entries:
        yield {
            "rank": entry.rank,
            "item": item_label(entry.item),
            "variant_id": entry.item.variant_id,
            "variant": entry.item.variant,
            "temperature": entry.item.temperature,
            "rating": None if entry.rating is None else round(entry.rating, 1),
            "ci_low": None if entry.low is None else round(entry.low, 1),
            "ci_high": None if entry.high is None else round(entry.high, 1),
            "strength": round(entry.strength, 4),
            "comparisons": entry.comparisons,
            "wins": entry.wins,
            "losses": entry.losses,
            "ties": entry.ties,
            "graph_part": entry.part,
            "too_few_comparisons": entry.too_few,
            "judged_by": ranking.judged_by,
        }


def matrix_rows(ranking: Ranking) -> Iterable[dict]:
    """One row per ordered pair that met: the row item's win rate against the column item."""
    labels = [item_label(entry.item) for entry in ranking.entries]
    for r, row in enumerate(ranking.matrix):
        for c, rate in enumerate(row):
            if rate is not None:
                yield {
                    "item": labels[r],
                    "opponent": labels[c],
                    "win_rate": round(rate, 4),
                    "comparisons": ranking.matrix_counts[r][c],
                    "judged_by": ranking.judged_by,
                }
