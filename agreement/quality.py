"""Per-annotator quality figures (pure NumPy, no Django).

Each helper takes one annotator's answers as arrays and returns a share with a Wilson score
interval, so a vendor manager can tell a real problem from a small sample: position bias (how often
the left response is picked), agreement with the majority of the *other* raters, accuracy on gold
(known-answer) items, consistency when a comparison comes back with its sides swapped, and the share
of "negligibly better / unsure" answers. :func:`flag_outliers` then picks out annotators whose
figure is far from their peers'.

When one test is run per annotator, some good annotator fails it by chance as the crowd grows:
:func:`binomial_p_value` gives each annotator's exact p-value and :func:`holm_adjust` corrects them
for the number of annotators tested (Holm 1979), so that the chance of flagging *any* annotator who
does not deserve it stays at the chosen level.
"""

from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import binom

__all__ = [
    "OUTLIER_THRESHOLD",
    "PositionBias",
    "Proportion",
    "agreement_with_others",
    "agreement_with_others_long",
    "binomial_p_value",
    "flag_outliers",
    "gold_accuracy",
    "holm_adjust",
    "position_bias",
    "robust_z_scores",
    "share_unsure",
    "swap_consistency",
    "wilson_interval",
]

FloatArray = NDArray[np.float64]

# Iglewicz & Hoaglin (1993), "How to Detect and Handle Outliers": flag |modified z| > 3.5.
OUTLIER_THRESHOLD = 3.5
# 0.6745 = the 75th percentile of N(0, 1): MAD / 0.6745 estimates sigma for normal data.
_MAD_TO_SIGMA = 0.6745
# sqrt(pi / 2): mean absolute deviation * 1.2533 estimates sigma for normal data.
_MEAN_AD_TO_SIGMA = 1.2533


@dataclass(frozen=True, slots=True)
class Proportion:
    """``successes`` out of ``total`` with the Wilson score interval [low, high] at ``confidence``."""

    successes: int
    total: int
    share: float
    low: float
    high: float
    confidence: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class PositionBias:
    """How often an annotator chose the left response.

    ``distance_from_half`` = ``|left_share - 0.5|``; ``significant`` is true when the Wilson
    interval excludes 0.5, i.e. the lean is unlikely to be chance at that confidence (sides are
    randomised, so an unbiased annotator picks left half of the time).
    """

    left_share: float
    distance_from_half: float
    low: float
    high: float
    total: int
    significant: bool

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson (1927) score interval for a binomial proportion.

    Unlike the normal ("Wald") interval it stays inside [0, 1] and keeps close to its nominal
    coverage for small samples and shares near 0 or 1 (Newcombe 1998, Stat. Med. 17:857-872), which
    is where annotator figures live (a few dozen gold items, 95% accuracy):
    ``(p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``.
    """
    if total <= 0:
        raise ValueError("A proportion needs at least one trial.")
    if not 0 <= successes <= total:
        raise ValueError(f"successes must lie in [0, {total}], got {successes}.")
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie strictly between 0 and 1.")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / total
    denominator = 1 + z**2 / total
    centre = (p + z**2 / (2 * total)) / denominator
    half_width = z * np.sqrt(p * (1 - p) / total + z**2 / (4 * total**2)) / denominator
    return max(0.0, float(centre - half_width)), min(1.0, float(centre + half_width))


def position_bias(left_choices: int, total: int, confidence: float = 0.95) -> PositionBias:
    """Share of comparisons where the annotator picked the left response, with its Wilson interval."""
    low, high = wilson_interval(left_choices, total, confidence)
    share = left_choices / total
    return PositionBias(
        left_share=share,
        distance_from_half=abs(share - 0.5),
        low=low,
        high=high,
        total=total,
        significant=not low <= 0.5 <= high,
    )


def agreement_with_others(ratings: ArrayLike, rater: int, confidence: float = 0.95) -> Proportion:
    """How often a rater matches the majority of the *other* raters of the same units.

    ``ratings`` is units x raters (NaN = missing) and ``rater`` a column. A unit counts when the
    rater rated it and the other raters' ratings have a single most frequent value; units where the
    others tie (e.g. 1 vs 1 with three raters per comparison) or where nobody else rated are left
    out. Leaving the rater out of the majority keeps a rater from agreeing with themselves. Compare
    exact values; to compare only the side chosen on the signed scale, pass ``np.sign(ratings)``.
    """
    data = np.asarray(ratings, dtype=float)
    if data.ndim != 2:
        raise ValueError("Ratings must be a 2-D units x raters array.")
    if not 0 <= rater < data.shape[1]:
        raise ValueError(f"rater must be a column index in [0, {data.shape[1]}), got {rater}.")
    own = data[:, rater]
    others = np.delete(data, rater, axis=1)
    present = ~np.isnan(others)
    values = np.unique(others[present])
    codes = np.searchsorted(values, others[present])
    n_units, q = others.shape[0], values.size
    votes = np.bincount(np.nonzero(present)[0] * q + codes, minlength=n_units * q).reshape(n_units, q)
    top = votes.max(axis=1, initial=0)
    has_majority = (top > 0) & ((votes == top[:, None]).sum(axis=1) == 1) & ~np.isnan(own)
    if not has_majority.any():
        raise ValueError("No unit has both this rater's rating and a majority among the other raters.")
    majority = values[votes[has_majority].argmax(axis=1)]
    agreed = int(np.sum(own[has_majority] == majority))
    return _proportion(agreed, int(has_majority.sum()), confidence)


def agreement_with_others_long(
    units: ArrayLike, raters: ArrayLike, values: ArrayLike, confidence: float = 0.95
) -> dict[int, Proportion]:
    """:func:`agreement_with_others` for every rater at once, from ratings in long form.

    One entry per rating: the unit, the rater (any integer ids) and the value; a rater rates a unit
    at most once. The same rule as the units x raters version (the other raters of the unit must
    have a single most frequent value), without building that array, which for a batch rated by
    hundreds of people would not fit in memory. Raters with no countable unit are left out.
    """
    unit, rater, value = (np.asarray(a).ravel() for a in (units, raters, values))
    if not unit.size == rater.size == value.size:
        raise ValueError("units, raters and values must have the same length.")
    if unit.size == 0:
        return {}
    if np.isnan(value.astype(float)).any():
        raise ValueError("Values must not be NaN: leave missing ratings out of the long form.")
    _, unit_code = np.unique(unit, return_inverse=True)
    categories, value_code = np.unique(value, return_inverse=True)
    rater_ids, rater_code = np.unique(rater, return_inverse=True)
    n_units, q = int(unit_code.max()) + 1, categories.size
    votes = np.bincount(unit_code * q + value_code, minlength=n_units * q).reshape(n_units, q)
    others = votes[unit_code]
    others[np.arange(unit.size), value_code] -= 1
    top = others.max(axis=1)
    counted = (top > 0) & ((others == top[:, None]).sum(axis=1) == 1)
    agreed = counted & (others.argmax(axis=1) == value_code)
    totals = np.bincount(rater_code, weights=counted, minlength=rater_ids.size)
    hits = np.bincount(rater_code, weights=agreed, minlength=rater_ids.size)
    return {
        int(rater_id): _proportion(int(hit), int(total), confidence)
        for rater_id, hit, total in zip(rater_ids, hits, totals, strict=True)
        if total > 0
    }


def gold_accuracy(answers: ArrayLike, gold: ArrayLike, confidence: float = 0.95) -> Proportion:
    """Share of gold (known-answer) items answered correctly; NaN answers (skipped) are left out."""
    given, expected = _paired(answers, gold)
    return _proportion(int(np.sum(given == expected)), given.size, confidence)


def swap_consistency(first_chosen: ArrayLike, second_chosen: ArrayLike, confidence: float = 0.95) -> Proportion:
    """Share of repeated comparisons where the annotator chose the same underlying response.

    A comparison shown again with its sides swapped is a check on attention and position bias: a
    careful annotator picks the same response both times, i.e. *different sides*. Pass the
    identifier of the chosen response (not the side) for the first and second showing; pairs with a
    NaN are left out.
    """
    first, second = _paired(first_chosen, second_chosen)
    return _proportion(int(np.sum(first == second)), first.size, confidence)


def share_unsure(strengths: ArrayLike, unsure_value: float, confidence: float = 0.95) -> Proportion:
    """Share of ratings at the "negligibly better / unsure" strength ``unsure_value`` (NaN left out).

    On the signed scale -4..-1, 1..4 pass ``np.abs(ratings)`` and ``unsure_value=1``.
    """
    values = np.asarray(strengths, dtype=float).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError("No strength given.")
    return _proportion(int(np.sum(values == unsure_value)), values.size, confidence)


def robust_z_scores(values: ArrayLike) -> FloatArray:
    """Iglewicz & Hoaglin's modified z-scores: ``0.6745 (x - median) / MAD``.

    Median and MAD (median absolute deviation) ignore the outliers being looked for, where mean and
    standard deviation would be pulled towards them. When more than half the values are equal the
    MAD is 0; the mean absolute deviation scaled to sigma (``1.2533 * meanAD``) takes its place. If
    that is 0 too every value equals the median and all scores are 0. NaN stays NaN.
    """
    x = np.asarray(values, dtype=float)
    deviation = x - np.nanmedian(x)
    mad = np.nanmedian(np.abs(deviation))
    if mad > 0:
        return _MAD_TO_SIGMA * deviation / mad
    mean_ad = np.nanmean(np.abs(deviation))
    if mean_ad > 0:
        return deviation / (_MEAN_AD_TO_SIGMA * mean_ad)
    return np.where(np.isnan(x), np.nan, 0.0)


def flag_outliers(
    values: ArrayLike,
    threshold: float = OUTLIER_THRESHOLD,
    tail: Literal["both", "low", "high"] = "both",
) -> NDArray[np.bool_]:
    """Mask of values whose modified z-score (:func:`robust_z_scores`) is beyond ``threshold``.

    The default 3.5 is Iglewicz & Hoaglin's recommendation. ``tail="low"`` flags only values far
    below the others (e.g. an annotator's gold accuracy or agreement), ``"high"`` only far above
    (e.g. position bias distance, unsure share). NaN is never flagged.
    """
    scores = robust_z_scores(values)
    with np.errstate(invalid="ignore"):
        if tail == "both":
            return np.abs(scores) > threshold
        if tail == "low":
            return scores < -threshold
        if tail == "high":
            return scores > threshold
    raise ValueError(f"tail must be 'both', 'low' or 'high', got {tail!r}.")


def binomial_p_value(
    successes: int, total: int, p0: float = 0.5, alternative: Literal["two-sided", "less", "greater"] = "two-sided"
) -> float:
    """Exact binomial test of ``successes`` out of ``total`` against the share ``p0``.

    ``"less"``: P(X <= successes), evidence that the true share is below ``p0``; ``"greater"``:
    P(X >= successes). ``"two-sided"`` sums the probabilities of every outcome no more likely than
    the one seen (the rule R's ``binom.test`` and SciPy's ``binomtest`` use); for ``p0 = 0.5`` it is
    twice the smaller tail, capped at 1.
    """
    if total <= 0:
        raise ValueError("A binomial test needs at least one trial.")
    if not 0 <= successes <= total:
        raise ValueError(f"successes must lie in [0, {total}], got {successes}.")
    if not 0 < p0 < 1:
        raise ValueError("p0 must lie strictly between 0 and 1.")
    if alternative == "less":
        return float(binom.cdf(successes, total, p0))
    if alternative == "greater":
        return float(binom.sf(successes - 1, total, p0))
    if alternative != "two-sided":
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}.")
    outcomes = np.arange(total + 1)
    probabilities = binom.pmf(outcomes, total, p0)
    # The relative slack keeps outcomes exactly as likely as the one seen from being lost to rounding.
    seen = probabilities[successes] * (1 + 1e-7)
    return float(min(1.0, probabilities[probabilities <= seen].sum()))


def holm_adjust(p_values: ArrayLike) -> FloatArray:
    """Holm's (1979) step-down adjusted p-values, in the order given; NaN stays NaN (not tested).

    Sort the m tested p-values ascending; the i-th smallest (from 0) becomes
    ``max over j <= i of min(1, (m - j) p_(j))``. Rejecting where the adjusted value is below alpha
    keeps the family-wise error rate (the chance of at least one false rejection) at alpha under any
    dependence between the tests, and rejects everything Bonferroni would, and often more.
    """
    p = np.asarray(p_values, dtype=float).ravel()
    if np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1].")
    adjusted = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    if tested.size == 0:
        return adjusted
    order = tested[np.argsort(p[tested], kind="stable")]
    m = order.size
    steps = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(steps)
    return adjusted


def _paired(a: ArrayLike, b: ArrayLike) -> tuple[FloatArray, FloatArray]:
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError("Both arrays must have the same length.")
    both = ~np.isnan(x) & ~np.isnan(y)
    if not both.any():
        raise ValueError("No pair with both values present.")
    return x[both], y[both]


def _proportion(successes: int, total: int, confidence: float) -> Proportion:
    low, high = wilson_interval(successes, total, confidence)
    return Proportion(
        successes=successes, total=total, share=successes / total, low=low, high=high, confidence=confidence
    )
