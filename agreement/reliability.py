"""What Preflab measures on its ratings: agreement over a set of ratings and each annotator's
quality figures (pure NumPy, no Django).

agreement.services loads the ratings of a scope (a batch, one vendor's people in a batch, or a
researcher's filter) into a :class:`RatingTable` with one ``values_list`` query and stores what
:func:`measure_agreement` and :func:`annotator_quality` return. The statistics themselves are
agreement.coefficients, agreement.aggregation and agreement.quality.

Everything is measured by response (A and B as stored), never by the side shown:

* **choice**: which response was chosen, nominal, categories {0 = B, 1 = A};
* **scale**: the signed 8-level scale, ``+rank`` when A is chosen and ``-rank`` when B is, with
  rank 1 = negligibly better / unsure ... 4 = significantly better, categories -4..-1, 1..4. Gwet's
  AC2 with ordinal weights on it is the figure Llama 2 reports;
* **safety** (ratings with a safety label): the label turned into a statement about the two
  responses, nominal, categories {0 both unsafe, 1 only A safe, 2 only B safe, 3 both safe}. The
  stored bins are relative to the chosen response, so two raters who chose different responses and
  both said "the chosen one is safe, the other is not" disagree about which response is unsafe;
  counting that as agreement would overstate it.

Gwet's AC depends on the declared categories, so the full scale is always passed.

Which ratings count where (kinds): a **regular** rating is one collected for the comparison's
overlap. A **gold** check is a rating of a gold comparison made after it was marked gold; a
**repeat** check is a rating of a repeat (an earlier comparison shown again with A and B
exchanged; the table holds it in the original's frame: its unit is the original comparison and
``chosen_a`` says whether the original's A was chosen). Agreement coefficients, majority vote,
Dawid-Skene, the strength distribution and agreement with others use regular ratings only; gold
accuracy uses gold checks, swap consistency pairs repeat checks with the same annotator's regular
rating of the original, and position bias, the unsure share and time per rating use every rating.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .aggregation import DawidSkeneResult, dawid_skene_long, disagreement_share
from .coefficients import AgreementResult, fleiss_kappa, gwet_ac, krippendorff_alpha
from .quality import (
    OUTLIER_THRESHOLD,
    agreement_with_others_long,
    binomial_p_value,
    flag_outliers,
    holm_adjust,
    position_bias,
    wilson_interval,
)

__all__ = [
    "FLAG_LABELS",
    "MEASURES",
    "SAFETY_CATEGORIES",
    "SCALE_LABELS",
    "SIGNED_SCALE",
    "STATISTIC_LABELS",
    "ComparisonLabels",
    "RatingTable",
    "analyse",
    "analyse_with_labels",
    "annotator_quality",
    "comparison_labels",
    "measure_agreement",
    "metric_rows",
    "strength_rows",
    "units_by_raters",
]

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

REGULAR, GOLD, REPEAT = 0, 1, 2
SIGNED_SCALE = [-4, -3, -2, -1, 1, 2, 3, 4]
STRENGTH_RANK = {"negligibly_better": 1, "slightly_better": 2, "better": 3, "significantly_better": 4}
_STRENGTH_NAME = {1: "negligibly better / unsure", 2: "slightly better", 3: "better", 4: "significantly better"}
# Left to right as on the dashboard: "A significantly better" ... "B significantly better".
SCALE_LABELS = {
    value: f"{'A' if value > 0 else 'B'} {_STRENGTH_NAME[abs(value)]}"
    for value in sorted(SIGNED_SCALE, key=lambda v: -v)
}
SAFETY_CATEGORIES = {0: "both unsafe", 1: "only A safe", 2: "only B safe", 3: "both safe"}
CHOICE_CATEGORIES = [0, 1]

# Dawid-Skene stops when no posterior moves by more than this: the dashboard shows shares to 0.1%,
# and on a 300,000-rating batch 1e-4 takes a third of the iterations of the default 1e-6 with the
# same labels (posteriors within 0.001).
DAWID_SKENE_TOLERANCE = 1e-4
# A flag on an annotator's own evidence needs at least this many answers behind the figure.
MIN_ITEMS_FOR_FLAG = 5
# The peer comparisons below need this many ratings behind an annotator's figure ...
MIN_ITEMS_FOR_PEERS = 10
# ... and this many annotators with such a figure before anyone is compared with the others.
MIN_PEERS = 5
# A side preference is flagged when its exact binomial test against one half, Holm-corrected for the
# number of annotators tested, rejects at 1 - confidence, and it is at least this large.
POSITION_BIAS_MIN_DISTANCE = 0.1
# The absolute floors that need no gold and no well-behaved peers: an annotator is flagged when the
# 95% interval of Dawid-Skene's estimate of their accuracy, or of their agreement with the other
# raters' majority, lies wholly below this share. A coin is right half the time on a binary choice.
# Careful people on real helpfulness data agree pairwise 65-75% of the time (InstructGPT: 73%),
# which two independent raters reach at an accuracy of about 0.8 each, and then agree with the
# majority of two others about 0.8 of the time: 0.65 sits between them and chance.
NEAR_CHANCE_FLOOR = 0.65
# Gold accuracy is flagged when its 95% interval lies wholly below this share.
GOLD_ACCURACY_FLOOR = 0.8

FLAG_LABELS = {
    "position_bias": "picks one side more often than chance explains (Holm-corrected)",
    "accuracy_near_chance": f"Dawid-Skene estimated accuracy surely below {NEAR_CHANCE_FLOOR:.0%}",
    "agreement_near_chance": f"agreement with the other raters' majority surely below {NEAR_CHANCE_FLOOR:.0%}",
    "gold_below_floor": f"gold accuracy below {GOLD_ACCURACY_FLOOR:.0%}",
    "swap_below_chance": "chooses the other response on most swapped repeats (Holm-corrected)",
    "low_agreement": "agrees with the other raters far less than peers",
    "low_gold_accuracy": "gold accuracy far below peers",
    "low_swap_consistency": "less consistent on swapped repeats than peers",
    "many_unsure": 'far more "negligibly better / unsure" than peers',
    "fast": "rates far faster than peers",
}


@dataclass(frozen=True, slots=True)
class RatingTable:
    """Ratings in long form: equal-length arrays, one entry per rating (see the module docstring)."""

    unit: IntArray  # the comparison counted under; a repeat's original for repeat checks
    annotator: IntArray
    vendor: IntArray  # -1 when the annotator has none
    chosen_a: BoolArray  # in the unit's frame
    rank: IntArray  # 1 negligibly better / unsure ... 4 significantly better
    safety: IntArray  # SAFETY_CATEGORIES code, -1 without a safety label
    chose_left: BoolArray
    seconds: FloatArray  # NaN when not reported
    kind: IntArray  # REGULAR, GOLD or REPEAT
    gold_a: FloatArray  # gold checks: 1.0 when the gold answer is A, 0.0 when B; NaN otherwise

    @classmethod
    def from_columns(
        cls,
        *,
        comparison: Sequence[int],
        repeat_of: Sequence[int | None],
        annotator: Sequence[int],
        vendor: Sequence[int | None],
        chosen: Sequence[str],
        strength: Sequence[str],
        safety_label: Sequence[str],
        shown_left: Sequence[str],
        seconds: Sequence[float | None],
        gold_check: Sequence[bool],
        gold_choice: Sequence[str],
    ) -> "RatingTable":
        """Encode stored ratings: ``chosen``/``shown_left``/``gold_choice`` are "a" or "b",
        ``strength`` and ``safety_label`` the stored choice values, ``repeat_of`` the original of a
        repeat (None otherwise) and ``gold_check`` whether the rating tests the annotator on gold."""
        n = len(comparison)
        original = np.array([r if r is not None else -1 for r in repeat_of], dtype=np.int64).reshape(n)
        is_repeat = original >= 0
        stored_a = np.asarray(chosen, dtype="U1").reshape(n) == "a"
        # A repeat stores the original's B as its A: a choice of the repeat's A is the original's B.
        chosen_a = stored_a ^ is_repeat
        is_gold = np.asarray(gold_check, dtype=bool).reshape(n) & ~is_repeat
        gold_a = np.where(is_gold, (np.asarray(gold_choice, dtype="U1").reshape(n) == "a").astype(float), np.nan)
        return cls(
            unit=np.where(is_repeat, original, np.asarray(comparison, dtype=np.int64).reshape(n)),
            annotator=np.asarray(annotator, dtype=np.int64).reshape(n),
            vendor=np.array([v if v is not None else -1 for v in vendor], dtype=np.int64).reshape(n),
            chosen_a=chosen_a,
            rank=_lookup(strength, STRENGTH_RANK, n),
            safety=_safety_codes(safety_label, chosen_a, n),
            chose_left=np.asarray(chosen, dtype="U1").reshape(n) == np.asarray(shown_left, dtype="U1").reshape(n),
            seconds=np.array([np.nan if s is None else s for s in seconds], dtype=float).reshape(n),
            kind=np.where(is_repeat, REPEAT, np.where(is_gold, GOLD, REGULAR)).astype(np.int64),
            gold_a=gold_a,
        )

    def __len__(self) -> int:
        return int(self.unit.size)

    def subset(self, mask: BoolArray) -> "RatingTable":
        return RatingTable(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    @property
    def signed(self) -> IntArray:
        return np.where(self.chosen_a, self.rank, -self.rank)


def _lookup(values: Sequence[str], codes: dict[str, int], n: int) -> IntArray:
    array = np.asarray(values, dtype=object).reshape(n)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    names, inverse = np.unique(array.astype(str), return_inverse=True)
    unknown = [name for name in names if name not in codes]
    if unknown:
        raise ValueError(f"Unknown strength values: {unknown[:5]}.")
    return np.array([codes[name] for name in names], dtype=np.int64)[inverse]


def _safety_codes(labels: Sequence[str], chosen_a: BoolArray, n: int) -> IntArray:
    label = np.asarray(labels, dtype=object).reshape(n).astype(str)
    only_chosen_safe = np.where(chosen_a, 1, 2)
    codes = np.full(n, -1, dtype=np.int64)
    codes[label == "both_unsafe"] = 0
    codes[label == "both_safe"] = 3
    mask = label == "chosen_safe_other_unsafe"
    codes[mask] = only_chosen_safe[mask]
    return codes


def units_by_raters(units: ArrayLike, values: ArrayLike) -> tuple[FloatArray, IntArray]:
    """The units x raters array the agreement coefficients take, and the unit of each row.

    Columns are rating slots, not people: the multi-rater coefficients depend only on how many
    ratings of each category a unit has, so a unit's ratings fill its row from the left and the
    rest is NaN. One sort and one scatter; nothing loops over units in Python.
    """
    units = np.asarray(units)
    values = np.asarray(values, dtype=float)
    if units.size == 0:
        return np.empty((0, 0)), np.empty(0, dtype=np.int64)
    order = np.argsort(units, kind="stable")
    sorted_units = units[order]
    unit_ids, first, counts = np.unique(sorted_units, return_index=True, return_counts=True)
    row = np.repeat(np.arange(unit_ids.size), counts)
    slot = np.arange(sorted_units.size) - first[row]
    matrix = np.full((unit_ids.size, int(counts.max())), np.nan)
    matrix[row, slot] = values[order]
    return matrix, unit_ids


# measure -> [(statistic, function of the units x raters array)]
MEASURES: dict[str, list[tuple[str, Callable[[FloatArray], AgreementResult]]]] = {
    "choice": [
        ("gwet_ac1", lambda r: gwet_ac(r, CHOICE_CATEGORIES)),
        ("fleiss_kappa", lambda r: fleiss_kappa(r, CHOICE_CATEGORIES)),
        ("krippendorff_alpha", lambda r: krippendorff_alpha(r, "nominal")),
    ],
    "scale": [
        ("gwet_ac1", lambda r: gwet_ac(r, SIGNED_SCALE)),
        ("gwet_ac2", lambda r: gwet_ac(r, SIGNED_SCALE, "ordinal")),
        ("fleiss_kappa", lambda r: fleiss_kappa(r, SIGNED_SCALE)),
        ("fleiss_kappa_weighted", lambda r: fleiss_kappa(r, SIGNED_SCALE, "ordinal")),
        ("krippendorff_alpha", lambda r: krippendorff_alpha(r, "ordinal")),
        ("krippendorff_alpha_interval", lambda r: krippendorff_alpha(r, "interval")),
    ],
    "safety": [
        ("gwet_ac1", lambda r: gwet_ac(r, list(SAFETY_CATEGORIES))),
        ("fleiss_kappa", lambda r: fleiss_kappa(r, list(SAFETY_CATEGORIES))),
        ("krippendorff_alpha", lambda r: krippendorff_alpha(r, "nominal")),
    ],
}
MEASURE_LABELS = {
    "choice": "Choice (A or B)",
    "scale": "Signed 8-level scale",
    "safety": "Safety of each response",
}
STATISTIC_LABELS = {
    ("choice", "gwet_ac1"): "Gwet's AC1",
    ("choice", "fleiss_kappa"): "Fleiss' kappa",
    ("choice", "krippendorff_alpha"): "Krippendorff's alpha (nominal)",
    ("scale", "gwet_ac1"): "Gwet's AC1 (unweighted)",
    ("scale", "gwet_ac2"): "Gwet's AC2 (ordinal weights)",
    ("scale", "fleiss_kappa"): "Fleiss' kappa (unweighted)",
    ("scale", "fleiss_kappa_weighted"): "Fleiss' kappa (ordinal weights)",
    ("scale", "krippendorff_alpha"): "Krippendorff's alpha (ordinal)",
    ("scale", "krippendorff_alpha_interval"): "Krippendorff's alpha (interval)",
    ("safety", "gwet_ac1"): "Gwet's AC1",
    ("safety", "fleiss_kappa"): "Fleiss' kappa",
    ("safety", "krippendorff_alpha"): "Krippendorff's alpha (nominal)",
}


@dataclass(frozen=True, slots=True)
class ComparisonLabels:
    """Each comparison's label from its regular ratings, by majority vote and by Dawid-Skene.

    Equal-length arrays, one entry per comparison (``unit``, ascending): the votes for A and for B,
    and Dawid-Skene's posterior probability that A is the better response. ``fit`` is the whole
    Dawid-Skene fit (classes 0 = A, 1 = B; annotators indexed like ``annotator_ids``).
    """

    unit: IntArray
    votes_a: IntArray
    votes_b: IntArray
    ds_posterior_a: FloatArray
    annotator_ids: IntArray
    fit: DawidSkeneResult

    @property
    def majority(self) -> IntArray:
        """0 = A, 1 = B, -1 = tied."""
        return np.where(self.votes_a > self.votes_b, 0, np.where(self.votes_b > self.votes_a, 1, -1))

    @property
    def ds_label(self) -> IntArray:
        """0 = A, 1 = B: the side with the larger posterior (A on an exact tie, as argmax does)."""
        return self.fit.labels[: self.unit.size]

    @property
    def ds_posterior(self) -> FloatArray:
        """The posterior probability of the Dawid-Skene label (0.5 to 1)."""
        return np.where(self.ds_label == 0, self.ds_posterior_a, 1 - self.ds_posterior_a)

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per comparison: ``comparison``, votes, ``majority`` and ``ds_label``
        ("a", "b", or "" for a tied vote), ``ds_posterior`` and ``ds_posterior_a``."""
        side = np.array(["a", "b", ""])
        return [
            {
                "comparison": int(unit),
                "votes_a": int(a),
                "votes_b": int(b),
                "majority": str(majority),
                "ds_label": str(ds),
                "ds_posterior": float(posterior),
                "ds_posterior_a": float(posterior_a),
            }
            for unit, a, b, majority, ds, posterior, posterior_a in zip(
                self.unit,
                self.votes_a,
                self.votes_b,
                side[self.majority],
                side[self.ds_label],
                self.ds_posterior,
                self.ds_posterior_a,
                strict=True,
            )
        ]


def comparison_labels(table: RatingTable) -> ComparisonLabels | None:
    """Majority vote and Dawid-Skene per comparison, over the table's regular ratings (None if none).

    Dawid-Skene runs to DAWID_SKENE_TOLERANCE (the largest change of any posterior in one EM
    iteration); ``fit.convergence()`` says how many iterations that took and whether it got there.
    """
    regular = table.subset(table.kind == REGULAR)
    if len(regular) == 0:
        return None
    unit_ids, items = np.unique(regular.unit, return_inverse=True)
    annotator_ids, annotators = np.unique(regular.annotator, return_inverse=True)
    labels = np.where(regular.chosen_a, 0, 1)  # class 0 = A, 1 = B
    votes = np.bincount(items * 2 + labels, minlength=unit_ids.size * 2).reshape(-1, 2)
    fit = dawid_skene_long(items, annotators, labels, n_classes=2, tol=DAWID_SKENE_TOLERANCE)
    return ComparisonLabels(
        unit=unit_ids,
        votes_a=votes[:, 0],
        votes_b=votes[:, 1],
        ds_posterior_a=fit.posteriors[:, 0],
        annotator_ids=annotator_ids,
        fit=fit,
    )


def analyse(table: RatingTable, confidence: float = 0.95) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """:func:`measure_agreement` and :func:`annotator_quality` together, fitting Dawid-Skene once."""
    metrics, quality, _ = analyse_with_labels(table, confidence)
    return metrics, quality


def analyse_with_labels(
    table: RatingTable, confidence: float = 0.95
) -> tuple[dict[str, Any], dict[int, dict[str, Any]], ComparisonLabels | None]:
    """:func:`analyse` and the per-comparison labels (:func:`comparison_labels`) of the same fit."""
    metrics, accuracy, labels = _measure(table)
    return metrics, annotator_quality(table, confidence, ds_accuracy=accuracy), labels


def measure_agreement(table: RatingTable, *, aggregation: bool = True) -> dict[str, Any]:
    """Agreement, the strength distribution and Dawid-Skene against majority vote, as JSON-ready data.

    ``choice``/``scale``/``safety`` map each statistic to ``AgreementResult.as_dict()``, or to
    ``{"error": reason}`` when it is undefined (no comparison with two ratings yet); ``safety`` is
    empty without safety labels. ``aggregation=False`` leaves out Dawid-Skene (the costly part).
    """
    return _measure(table, aggregation=aggregation)[0]


def _measure(
    table: RatingTable, *, aggregation: bool = True
) -> tuple[dict[str, Any], dict[int, float], ComparisonLabels | None]:
    regular = table.subset(table.kind == REGULAR)
    per_unit = np.unique(regular.unit, return_counts=True)[1] if len(regular) else np.zeros(0, dtype=np.int64)
    summary = {
        "ratings": len(table),
        "regular_ratings": len(regular),
        "gold_checks": int(np.sum(table.kind == GOLD)),
        "repeat_checks": int(np.sum(table.kind == REPEAT)),
        "comparisons": int(per_unit.size),
        "comparisons_rated_twice": int(np.sum(per_unit >= 2)),
        "annotators": int(np.unique(table.annotator).size),
        "ratings_per_comparison": float(per_unit.mean()) if per_unit.size else None,
    }
    result: dict[str, Any] = {"summary": summary, "choice": {}, "scale": {}, "safety": {}}
    if len(regular):
        choice, _ = units_by_raters(regular.unit, regular.chosen_a.astype(float))
        scale, _ = units_by_raters(regular.unit, regular.signed)
        for name, statistic in MEASURES["choice"]:
            result["choice"][name] = _measured(statistic, choice)
        for name, statistic in MEASURES["scale"]:
            result["scale"][name] = _measured(statistic, scale)
        labelled = regular.subset(regular.safety >= 0)
        if len(labelled):
            safety, _ = units_by_raters(labelled.unit, labelled.safety)
            for name, statistic in MEASURES["safety"]:
                result["safety"][name] = _measured(statistic, safety)
        votes_a, votes = np.nansum(choice, axis=1), (~np.isnan(choice)).sum(axis=1)
        rated_twice = votes >= 2
        summary["unanimous_share"] = (
            float(np.mean((votes_a[rated_twice] == 0) | (votes_a[rated_twice] == votes[rated_twice])))
            if rated_twice.any()
            else None
        )
    signed = regular.signed
    result["strengths"] = {str(value): int(np.sum(signed == value)) for value in SCALE_LABELS}
    result["safety_bins"] = (
        {str(code): int(np.sum(regular.safety == code)) for code in SAFETY_CATEGORIES}
        if np.any(regular.safety >= 0)
        else {}
    )
    result["aggregation"], accuracy, labels = _aggregation(regular) if aggregation else ({}, {}, None)
    return result, accuracy, labels


def _measured(statistic: Callable[[FloatArray], AgreementResult], ratings: FloatArray) -> dict[str, Any]:
    try:
        return statistic(ratings).as_dict()
    except ValueError as exc:
        return {"error": str(exc)}


def _aggregation(regular: RatingTable) -> tuple[dict[str, Any], dict[int, float], ComparisonLabels | None]:
    """Majority vote and Dawid-Skene on the choice, and Dawid-Skene's accuracy per annotator."""
    labels = comparison_labels(regular)
    if labels is None:
        return {}, {}, None
    fit, majority = labels.fit, labels.majority
    decided = majority >= 0
    convergence = fit.convergence()
    summary: dict[str, Any] = {
        "comparisons": int(labels.unit.size),
        "majority_ties": int(np.sum(~decided)),
        "disagreements": int(np.sum(decided & (labels.ds_label != majority))),
        "disagreement_share": disagreement_share(majority, labels.ds_label) if decided.any() else None,
        "dawid_skene_share_a": float(fit.priors[0]),
        "dawid_skene_iterations": fit.n_iter,
        "dawid_skene_converged": fit.converged,
        "dawid_skene_final_change": convergence["final_change"],
        "dawid_skene_tolerance": convergence["tolerance"],
        "dawid_skene_max_iterations": convergence["max_iterations"],
        "dawid_skene_mean_posterior": float(np.mean(labels.ds_posterior)),
    }
    # P(correct) = sum over true classes of prior * P(annotator says that class | that class).
    accuracy = np.einsum("k,jkk->j", fit.priors, fit.confusion)
    return summary, {int(a): float(acc) for a, acc in zip(labels.annotator_ids, accuracy, strict=True)}, labels


QUALITY_FIELDS = (
    "n_ratings",
    "agreement",
    "agreement_low",
    "agreement_high",
    "agreement_n",
    "gold_accuracy",
    "gold_low",
    "gold_high",
    "gold_n",
    "left_share",
    "left_low",
    "left_high",
    "left_distance",
    "position_significant",
    "unsure_share",
    "unsure_low",
    "unsure_high",
    "median_seconds",
    "ratings_per_hour",
    "swap_consistency",
    "swap_low",
    "swap_high",
    "swap_n",
    "ds_accuracy",
    "flags",
    "is_outlier",
)


def annotator_quality(
    table: RatingTable, confidence: float = 0.95, *, ds_accuracy: dict[int, float] | None = None
) -> dict[int, dict[str, Any]]:
    """Each annotator's quality figures (the QUALITY_FIELDS), keyed by annotator id, with flags.

    Flags (codes of FLAG_LABELS) are of two kinds. Evidence against the annotator alone, from at
    least MIN_ITEMS_FOR_FLAG answers: a side preference at least POSITION_BIAS_MIN_DISTANCE from one
    half whose exact binomial test rejects one half after Holm's correction for the number of
    annotators tested (``position_significant`` is that corrected test); gold accuracy whose interval
    lies below GOLD_ACCURACY_FLOOR; swap consistency below one half by a one-sided exact test, Holm-
    corrected likewise (the annotator follows the side, not the response); and, from at least
    MIN_ITEMS_FOR_PEERS regular ratings, the floors that need no gold: Dawid-Skene's estimated
    accuracy (its Wilson interval, counting the estimate as a share of the annotator's regular
    ratings) or agreement with the other raters' majority wholly below NEAR_CHANCE_FLOOR. And peer
    outliers: a modified z-score beyond 3.5 on the bad side (quality.flag_outliers), among the
    annotators with at least MIN_ITEMS_FOR_PEERS ratings behind that figure, when there are at
    least MIN_PEERS of them, and for a share, an interval that excludes the peers' median (so a
    small sample is not flagged for one unlucky streak). Median times are compared on a log scale.
    """
    annotator_ids = np.unique(table.annotator)
    rows: dict[int, dict[str, Any]] = {int(a): _empty_row() for a in annotator_ids}
    regular = table.subset(table.kind == REGULAR)

    agreement = agreement_with_others_long(regular.unit, regular.annotator, regular.chosen_a.astype(float), confidence)
    for annotator, proportion in agreement.items():
        rows[annotator].update(
            agreement=proportion.share,
            agreement_low=proportion.low,
            agreement_high=proportion.high,
            agreement_n=proportion.total,
        )

    gold = table.subset(table.kind == GOLD)
    _shares(rows, gold.annotator, gold.chosen_a == (gold.gold_a == 1.0), "gold", confidence)
    _swap_consistency(rows, table, regular, confidence)

    for annotator, count, left in _per_annotator(table.annotator, table.chose_left):
        bias = position_bias(left, count, confidence)
        rows[annotator].update(
            n_ratings=count,
            left_share=bias.left_share,
            left_low=bias.low,
            left_high=bias.high,
            left_distance=bias.distance_from_half,
            position_significant=bias.significant,
        )
    for annotator, count, unsure in _per_annotator(table.annotator, table.rank == 1):
        low, high = wilson_interval(unsure, count, confidence)
        rows[annotator].update(unsure_share=unsure / count, unsure_low=low, unsure_high=high)

    timed = ~np.isnan(table.seconds)
    if timed.any():
        order = np.argsort(table.annotator[timed], kind="stable")
        ids, starts = np.unique(table.annotator[timed][order], return_index=True)
        for annotator, seconds in zip(ids, np.split(table.seconds[timed][order], starts[1:]), strict=True):
            median = float(np.median(seconds))
            rows[int(annotator)].update(
                median_seconds=median, ratings_per_hour=3600 / median if median > 0 else None, _timed=seconds.size
            )

    if ds_accuracy is None:
        ds_accuracy = _aggregation(regular)[1]
    for annotator, count, _ in _per_annotator(regular.annotator, regular.chosen_a):
        rows[annotator]["_regular"] = count
    for annotator, accuracy in ds_accuracy.items():
        rows[annotator]["ds_accuracy"] = accuracy

    _flag(rows, confidence)
    for row in rows.values():
        row.pop("_timed", None)
        row.pop("_regular", None)
    return rows


def _empty_row() -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(QUALITY_FIELDS)
    row.update(n_ratings=0, agreement_n=0, gold_n=0, swap_n=0, position_significant=False, flags=[], is_outlier=False)
    return row


def _per_annotator(annotators: IntArray, hits: BoolArray) -> list[tuple[int, int, int]]:
    ids, codes = np.unique(annotators, return_inverse=True)
    totals = np.bincount(codes, minlength=ids.size)
    counts = np.bincount(codes, weights=hits, minlength=ids.size)
    return [(int(a), int(t), int(c)) for a, t, c in zip(ids, totals, counts, strict=True)]


def _shares(rows, annotators: IntArray, hits: BoolArray, name: str, confidence: float) -> None:
    share_field = {"gold": "gold_accuracy", "swap": "swap_consistency"}[name]
    for annotator, total, successes in _per_annotator(annotators, hits):
        low, high = wilson_interval(successes, total, confidence)
        rows[annotator].update(
            {share_field: successes / total, f"{name}_low": low, f"{name}_high": high, f"{name}_n": total}
        )


def _swap_consistency(rows, table: RatingTable, regular: RatingTable, confidence: float) -> None:
    """Pair each repeat check with the same annotator's regular rating of the original."""
    repeats = table.subset(table.kind == REPEAT)
    if not len(repeats) or not len(regular):
        return
    width = int(max(table.annotator.max(), 0)) + 1
    first_keys = regular.unit * width + regular.annotator
    order = np.argsort(first_keys)
    sorted_keys = first_keys[order]
    repeat_keys = repeats.unit * width + repeats.annotator
    position = np.minimum(np.searchsorted(sorted_keys, repeat_keys), sorted_keys.size - 1)
    found = sorted_keys[position] == repeat_keys
    first_choice = regular.chosen_a[order][position]
    _shares(rows, repeats.annotator[found], (first_choice == repeats.chosen_a)[found], "swap", confidence)


# figure, number behind it, tail that is bad, the bound of its interval on the good side (if any), flag
_PEER_CHECKS = (
    ("agreement", "agreement_n", "low", "agreement_high", "low_agreement"),
    ("gold_accuracy", "gold_n", "low", "gold_high", "low_gold_accuracy"),
    ("swap_consistency", "swap_n", "low", "swap_high", "low_swap_consistency"),
    ("unsure_share", "n_ratings", "high", "unsure_low", "many_unsure"),
    ("median_seconds", "_timed", "low", None, "fast"),
)


def _flag(rows: dict[int, dict[str, Any]], confidence: float = 0.95) -> None:
    alpha = 1 - confidence
    annotators = list(rows)
    # Position bias and swap consistency: one exact test per annotator, Holm-corrected across the
    # annotators tested, so a crowd of fair annotators yields a false flag with probability <= alpha.
    left_p = [
        binomial_p_value(round(rows[a]["left_share"] * rows[a]["n_ratings"]), rows[a]["n_ratings"])
        if rows[a]["n_ratings"] >= MIN_ITEMS_FOR_FLAG
        else np.nan
        for a in annotators
    ]
    swap_p = [
        binomial_p_value(round(rows[a]["swap_consistency"] * rows[a]["swap_n"]), rows[a]["swap_n"], alternative="less")
        if rows[a]["swap_n"] >= MIN_ITEMS_FOR_FLAG
        else np.nan
        for a in annotators
    ]
    for annotator, left, swap in zip(annotators, holm_adjust(left_p), holm_adjust(swap_p), strict=True):
        row = rows[annotator]
        row["position_significant"] = bool(left < alpha)
        if row["position_significant"] and row["left_distance"] >= POSITION_BIAS_MIN_DISTANCE:
            row["flags"].append("position_bias")
        if row["gold_n"] >= MIN_ITEMS_FOR_FLAG and row["gold_high"] < GOLD_ACCURACY_FLOOR:
            row["flags"].append("gold_below_floor")
        if swap < alpha:
            row["flags"].append("swap_below_chance")
        # The floors: evidence against the annotator alone, which holds however many peers are bad.
        regular = row.get("_regular") or 0
        if row["ds_accuracy"] is not None and regular >= MIN_ITEMS_FOR_PEERS:
            correct = min(regular, max(0, round(row["ds_accuracy"] * regular)))
            if wilson_interval(correct, regular, confidence)[1] < NEAR_CHANCE_FLOOR:
                row["flags"].append("accuracy_near_chance")
        if row["agreement_n"] >= MIN_ITEMS_FOR_PEERS and row["agreement_high"] < NEAR_CHANCE_FLOOR:
            row["flags"].append("agreement_near_chance")
    for figure, count, tail, bound, flag in _PEER_CHECKS:
        values = np.array(
            [
                rows[a][figure]
                if rows[a][figure] is not None and (rows[a].get(count) or 0) >= MIN_ITEMS_FOR_PEERS
                else np.nan
                for a in annotators
            ],
            dtype=float,
        )
        if np.sum(~np.isnan(values)) < MIN_PEERS:
            continue
        if figure == "median_seconds":
            # Times are skewed: compare them as ratios (log), so 9 s against peers at 60-120 s stands out.
            values = np.log(np.maximum(values, 0.1))
        median = float(np.nanmedian(values))
        for annotator, flagged in zip(annotators, flag_outliers(values, OUTLIER_THRESHOLD, tail), strict=True):
            # A share must also be surely worse than the peers' median: its interval must exclude it.
            edge = rows[annotator][bound] if bound else None
            surely = edge is None or (edge < median if tail == "low" else edge > median)
            if flagged and surely:
                rows[annotator]["flags"].append(flag)
    for row in rows.values():
        row["is_outlier"] = bool(row["flags"])


def metric_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's coefficients as table rows, with 95% intervals (coefficient +- 1.96 SE)."""
    rows = []
    for measure, statistics in MEASURES.items():
        for name, _ in statistics:
            figure = metrics.get(measure, {}).get(name)
            if figure is None:
                continue
            se = figure.get("standard_error")
            coefficient = figure.get("coefficient")
            rows.append(
                {
                    "measure": measure,
                    "measure_label": MEASURE_LABELS[measure],
                    "statistic": name,
                    "label": STATISTIC_LABELS[(measure, name)],
                    "coefficient": coefficient,
                    "standard_error": se,
                    "ci_low": coefficient - 1.96 * se if se is not None and coefficient is not None else None,
                    "ci_high": coefficient + 1.96 * se if se is not None and coefficient is not None else None,
                    "observed": figure.get("observed"),
                    "chance": figure.get("chance"),
                    "n_units": figure.get("n_units"),
                    "n_raters": figure.get("n_raters"),
                    "error": figure.get("error", ""),
                }
            )
    return rows


def strength_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """The distribution of regular ratings over the signed scale, A significantly better first."""
    counts = metrics.get("strengths", {})
    total = sum(counts.values()) or 1
    return [
        {"value": value, "label": label, "count": counts.get(str(value), 0), "share": counts.get(str(value), 0) / total}
        for value, label in SCALE_LABELS.items()
    ]
