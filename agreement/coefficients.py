"""Chance-corrected inter-rater agreement for units x raters ratings (pure NumPy, no Django).

Llama 2 (Touvron et al., 2023, sections 3.4.2 and 4.4) reports Gwet's AC1/AC2 for its preference
ratings; users also expect Fleiss' kappa, Krippendorff's alpha and, for two raters, Cohen's kappa.

Input is a units x raters float array: one row per rated item (a comparison), one column per rater
slot, ``np.nan`` for a missing rating. Category values are arbitrary numbers (for example the
8-level signed preference scale -4..-1, 1..4). Every coefficient starts from the units x categories
count matrix ``r[i, k]`` (how many raters put unit ``i`` in category ``k``), built with one
``np.bincount``; nothing loops over units in Python.

The multi-rater formulas are those of Gwet, K. L. (2014), *Handbook of Inter-Rater Reliability*,
4th ed. (raw ratings with missing values, weighted versions and the linearisation variance
estimators), as implemented by the reference package irrCAC 0.4.4 (``irrCAC.raw.CAC``).
tests/agreement/test_coefficients.py checks every figure against values computed by irrCAC and by
the ``krippendorff`` package (fixture written by scripts/make_agreement_fixtures.py). Conventions
shared with irrCAC:

* Units with no rating are dropped. A unit rated once has no pair of ratings, so it is left out of
  the observed agreement, but for Gwet's AC and Fleiss' kappa it still counts in the category
  shares behind chance agreement and in the number of units ``n`` of the variance (Krippendorff's
  alpha uses only the units rated at least twice).
* Standard errors use no finite-population correction (irrCAC's default ``N=inf``, ``f = 0``).

Defined answers where the textbook formula divides by zero:

* When chance agreement is 1 (every rating in a single category, or weights that treat all the used
  categories as identical), observed agreement is necessarily 1 too; the coefficient is then defined
  as 1.0 with a standard error of 0.0. (On such data irrCAC 0.4.4 gives AC1 = 1 with a NaN
  standard error and raises ZeroDivisionError for Fleiss' kappa; the krippendorff package raises.)
* ``standard_error`` is ``None`` when fewer than two units enter the estimate: the variance
  estimator needs at least two.
* Empty input, input without any rating, and input where no unit has two ratings raise
  ``ValueError``: there is no pair of ratings to agree or disagree.
"""

import dataclasses
from dataclasses import dataclass
from typing import Literal, cast, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "WEIGHT_KINDS",
    "AgreementResult",
    "KrippendorffLevel",
    "WeightKind",
    "cohen_kappa",
    "fleiss_kappa",
    "gwet_ac",
    "krippendorff_alpha",
    "weight_matrix",
]

FloatArray = NDArray[np.float64]
WeightKind = Literal["identity", "linear", "quadratic", "ordinal", "radical", "ratio", "circular", "bipolar"]
WEIGHT_KINDS: tuple[str, ...] = get_args(WeightKind)
KrippendorffLevel = Literal["nominal", "ordinal", "interval", "ratio"]

# 1 - chance agreement at or below this is treated as exactly 0 (the degenerate case above).
_CHANCE_TOLERANCE = 1e-12


@dataclass(frozen=True, slots=True)
class AgreementResult:
    """One agreement coefficient with the figures it was computed from.

    ``observed`` is the (weighted) percent agreement p_a and ``chance`` the chance agreement p_e,
    so that ``coefficient = (observed - chance) / (1 - chance)``; for Krippendorff's alpha
    ``observed`` includes Gwet's small-sample correction (see :func:`krippendorff_alpha`).
    ``n_units`` counts the units that entered the estimate and ``n_raters`` the rater columns.
    """

    coefficient: float
    standard_error: float | None
    observed: float
    chance: float
    n_units: int
    n_raters: int

    def as_dict(self) -> dict[str, float | int | None]:
        return dataclasses.asdict(self)


def weight_matrix(categories: ArrayLike, kind: WeightKind = "identity") -> FloatArray:
    """Agreement weights ``w[k, l]`` in [0, 1] between sorted ``categories``, ``w[k, k] = 1``.

    The kinds are Gwet's (2014, section 3.3), with the exact definitions of ``irrCAC.weights``;
    ``c`` are the category values and ``span = max(c) - min(c)``:

    * identity: 1 on the diagonal, 0 elsewhere (AC1 and the unweighted coefficients);
    * linear: ``1 - |c_k - c_l| / span``; quadratic: ``1 - ((c_k - c_l) / span)**2``;
      radical: ``1 - sqrt(|c_k - c_l| / span)``;
    * ordinal: by rank, not value: ``1 - m(m - 1)/2 / max`` with ``m = |k - l| + 1``;
    * ratio: ``1 - ((c_k - c_l) / (c_k + c_l))**2 / (span / (max + min))**2`` (positive values);
    * circular: ``1 - sin(pi (c_k - c_l) / (span + 1))**2 / max``;
    * bipolar: ``1 - d / max(d)``, ``d = (c_k - c_l)**2 / ((c_k + c_l - 2 min)(2 max - c_k - c_l))``.

    Weights other than ordinal use the values, so on the signed scale -4..-1, 1..4 the step from
    -1 to 1 (a change of side) counts twice as much as the step from 1 to 2.
    """
    cats = _category_values(categories)
    if kind not in WEIGHT_KINDS:
        raise ValueError(f"Unknown weights {kind!r}; expected one of {WEIGHT_KINDS} or a square matrix.")
    q = cats.size
    if kind == "identity" or q == 1:
        return np.eye(q)
    k, m = cats[:, None], cats[None, :]
    low, high = cats[0], cats[-1]
    span = high - low
    if kind == "linear":
        return 1 - np.abs(k - m) / span
    if kind == "quadratic":
        return 1 - ((k - m) / span) ** 2
    if kind == "radical":
        return 1 - np.sqrt(np.abs(k - m) / span)
    if kind == "ordinal":
        steps = np.abs(np.subtract.outer(np.arange(q), np.arange(q))) + 1
        return _from_disagreement(steps * (steps - 1) / 2)
    if kind == "ratio":
        if low <= 0:
            raise ValueError("Ratio weights need positive category values.")
        return 1 - ((k - m) / (k + m)) ** 2 / (span / (high + low)) ** 2
    if kind == "circular":
        return _from_disagreement(np.sin(np.pi * (k - m) / (span + 1)) ** 2)
    # bipolar: the denominator is zero only on the diagonal, where the distance is 0 by definition.
    denominator = (k + m - 2 * low) * (2 * high - k - m)
    np.fill_diagonal(denominator, 1.0)
    distance = (k - m) ** 2 / denominator
    return _from_disagreement(distance)


def gwet_ac(
    ratings: ArrayLike,
    categories: ArrayLike | None = None,
    weights: WeightKind | ArrayLike = "identity",
) -> AgreementResult:
    """Gwet's AC1 (identity weights) or AC2 (any other weights) for two or more raters.

    Gwet (2008, Br. J. Math. Stat. Psychol. 61:29-48; 2014, with weights and missing ratings):

    * ``p_a = mean over units with r_i >= 2 of  sum_k r_ik (r*_ik - 1) / (r_i (r_i - 1))``, with
      ``r*_ik = sum_l w_kl r_il``;
    * ``pi_k = mean over all units of r_ik / r_i``;
    * ``p_e = T_w / (q (q - 1)) * sum_k pi_k (1 - pi_k)``, ``T_w`` the sum of the weights and ``q``
      the number of categories, so declaring unused ``categories`` changes AC1/AC2: pass the full
      scale when it is known.

    ``categories`` defaults to the values that occur; a weight matrix is indexed by the sorted
    categories. The standard error is Gwet's linearisation estimator (2008; 2014), as in irrCAC's
    ``CAC.gwet()``.
    """
    counts, cats, n_raters = _count_matrix(ratings, categories)
    w = _resolve_weights(weights, cats)
    q = cats.size
    per_unit = _ratings_per_unit(counts)
    unit_agreement, paired = _unit_agreement(counts, w, per_unit)
    observed = float(unit_agreement[paired].mean())
    n_units = per_unit.size
    shares = (counts / per_unit[:, None]).mean(axis=0)
    if q == 1:
        return _perfect(n_units, n_raters)
    chance_scale = w.sum() / (q * (q - 1))
    chance = float(chance_scale * np.sum(shares * (1 - shares)))
    if 1 - chance <= _CHANCE_TOLERANCE:
        return _perfect(n_units, n_raters)
    coefficient = (observed - chance) / (1 - chance)
    unit_coefficient = (n_units / paired.sum()) * (unit_agreement - chance * paired) / (1 - chance)
    unit_chance = chance_scale * (counts @ (1 - shares)) / per_unit
    terms = unit_coefficient - 2 * (1 - coefficient) * (unit_chance - chance) / (1 - chance)
    return AgreementResult(
        coefficient=float(coefficient),
        standard_error=_standard_error(terms, coefficient),
        observed=observed,
        chance=chance,
        n_units=n_units,
        n_raters=n_raters,
    )


def fleiss_kappa(
    ratings: ArrayLike,
    categories: ArrayLike | None = None,
    weights: WeightKind | ArrayLike = "identity",
) -> AgreementResult:
    """Fleiss' generalised (weighted) kappa for two or more raters and missing ratings.

    Same observed agreement ``p_a`` as :func:`gwet_ac`; chance agreement is the probability that
    two ratings drawn at random from the pooled shares agree, ``p_e = sum_kl w_kl pi_k pi_l``
    (Fleiss 1971, Psychol. Bull. 76:378-382, generalised to weights and missing ratings by Gwet
    2014). Standard error: Gwet's linearisation estimator, as irrCAC's ``CAC.fleiss()``.
    """
    counts, cats, n_raters = _count_matrix(ratings, categories)
    w = _resolve_weights(weights, cats)
    per_unit = _ratings_per_unit(counts)
    unit_agreement, paired = _unit_agreement(counts, w, per_unit)
    observed = float(unit_agreement[paired].mean())
    n_units = per_unit.size
    shares = (counts / per_unit[:, None]).mean(axis=0)
    chance = float(shares @ w @ shares)
    if 1 - chance <= _CHANCE_TOLERANCE:
        return _perfect(n_units, n_raters)
    coefficient = (observed - chance) / (1 - chance)
    unit_coefficient = (n_units / paired.sum()) * (unit_agreement - chance * paired) / (1 - chance)
    symmetric_shares = (w @ shares + w.T @ shares) / 2
    unit_chance = (counts @ symmetric_shares) / per_unit
    terms = unit_coefficient - 2 * (1 - coefficient) * (unit_chance - chance) / (1 - chance)
    return AgreementResult(
        coefficient=float(coefficient),
        standard_error=_standard_error(terms, coefficient),
        observed=observed,
        chance=chance,
        n_units=n_units,
        n_raters=n_raters,
    )


def krippendorff_alpha(ratings: ArrayLike, level: KrippendorffLevel = "nominal") -> AgreementResult:
    """Krippendorff's alpha at a level of measurement, with Gwet's standard error.

    The coefficient equals ``krippendorff.alpha(ratings.T, level_of_measurement=level)`` of the
    ``krippendorff`` package (Krippendorff 2011, "Computing Krippendorff's alpha-reliability"),
    whose distances ``d`` over the observed values ``c`` are:

    * nominal: ``d = [c_k != c_l]``;  interval: ``d = (c_k - c_l)**2``;
    * ratio: ``d = ((c_k - c_l) / (c_k + c_l))**2`` (0 where ``c_k + c_l = 0``; meant for
      non-negative values);
    * ordinal: ``d = (sum_{g=k..l} n_g - (n_k + n_l) / 2)**2``, ``n_g`` the number of pairable
      ratings with value ``g``: it depends on the data, and it is *not* irrCAC's "ordinal" weights
      (those are by rank only; see :func:`weight_matrix`).

    It is computed in Gwet's form (2014; irrCAC's ``CAC.krippendorff()``), over the
    units rated at least twice, with weights ``w = 1 - d / max(d)``: ``r_bar`` the mean number of
    ratings per such unit and ``N`` their total,
    ``p'_a = mean_i sum_k r_ik (r*_ik - 1) / (r_bar (r_i - 1))``,
    ``p_a = (1 - 1/N) p'_a + 1/N``, ``pi_k = sum_i r_ik / N``, ``p_e = sum_kl w_kl pi_k pi_l``.
    This is algebraically ``1 - D_o / D_e`` and matches the krippendorff package to rounding; it is
    also irrCAC's alpha for the weight matrix ``w`` (nominal = identity, interval = irrCAC's
    quadratic weights). The standard error is irrCAC's for that matrix; for the ordinal level it
    treats the data-dependent distances as fixed.
    """
    if level not in get_args(KrippendorffLevel):
        raise ValueError(f"Unknown level {level!r}; expected one of {get_args(KrippendorffLevel)}.")
    counts, values, n_raters = _count_matrix(ratings, None)
    per_unit = _ratings_per_unit(counts)
    paired = per_unit >= 2
    if not paired.any():
        raise ValueError("No unit has two or more ratings: agreement is undefined.")
    counts, per_unit = counts[paired], per_unit[paired]
    w = _level_weights(values, counts.sum(axis=0), level)
    n_units = per_unit.size
    mean_per_unit = per_unit.mean()
    n_values = per_unit.sum()
    unit_agreement_prime = _agreeing_pairs(counts, w) / (mean_per_unit * (per_unit - 1))
    observed_prime = unit_agreement_prime.mean()
    observed = float((1 - 1 / n_values) * observed_prime + 1 / n_values)
    shares = counts.sum(axis=0) / n_values
    chance = float(shares @ w @ shares)
    if 1 - chance <= _CHANCE_TOLERANCE:
        return _perfect(n_units, n_raters)
    coefficient = (observed - chance) / (1 - chance)
    coefficient_prime = (observed_prime - chance) / (1 - chance)
    relative_size = (per_unit - mean_per_unit) / mean_per_unit
    unit_agreement = unit_agreement_prime - observed * relative_size
    unit_coefficient = (unit_agreement - chance) / (1 - chance)
    symmetric_shares = (w @ shares + w.T @ shares) / 2
    unit_chance = (counts @ symmetric_shares) / mean_per_unit - chance * relative_size
    terms = unit_coefficient - 2 * (1 - coefficient_prime) * (unit_chance - chance) / (1 - chance)
    return AgreementResult(
        coefficient=float(coefficient),
        standard_error=_standard_error(terms, coefficient_prime),
        observed=observed,
        chance=chance,
        n_units=n_units,
        n_raters=n_raters,
    )


def cohen_kappa(a: ArrayLike, b: ArrayLike, weights: Literal["linear", "quadratic"] | None = None) -> AgreementResult:
    """Cohen's kappa (1960) or weighted kappa (1968) between two raters' ratings of the same units.

    Units where either rating is NaN are dropped. The coefficient is sklearn's
    ``cohen_kappa_score(a, b, weights=weights)``: the categories are the sorted values used by
    either rater and the weights go by category rank (``|i - j|`` or ``(i - j)**2``), not by value.
    With the joint shares ``p_ij`` and agreement weights ``w_ij = 1 - d_ij / max(d)``:
    ``p_a = sum w_ij p_ij``, ``p_e = sum w_ij p_i. p_.j``.

    The standard error is the large-sample (non-null) one of Fleiss, Cohen & Everitt (1969,
    Psychol. Bull. 72:323-327), also used by Gwet (2014) and irrCAC's ``table.CAC.cohen()``::

        var = (sum_ij p_ij (w_ij - (1 - kappa)(wbar_i. + wbar_.j))**2
               - (kappa - p_e (1 - kappa))**2) / (n (1 - p_e)**2)

    with ``wbar_i. = sum_j w_ij p_.j`` and ``wbar_.j = sum_i w_ij p_i.``.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError("a and b must be 1-D arrays of the same length (one rating per unit).")
    both = ~np.isnan(x) & ~np.isnan(y)
    n = int(both.sum())
    if n == 0:
        raise ValueError("No unit is rated by both raters.")
    pairs = np.concatenate([x[both], y[both]])
    if not np.isfinite(pairs).all():
        raise ValueError("Ratings must be finite numbers or NaN.")
    cats = np.unique(pairs)
    codes = np.searchsorted(cats, pairs)
    q = cats.size
    joint = np.bincount(codes[:n] * q + codes[n:], minlength=q * q).reshape(q, q) / n
    if weights is None or q == 1:
        w = np.eye(q)
    elif weights in ("linear", "quadratic"):
        steps = np.abs(np.subtract.outer(np.arange(q), np.arange(q))) / (q - 1)
        w = 1 - (steps if weights == "linear" else steps**2)
    else:
        raise ValueError(f"Unknown weights {weights!r}; expected None, 'linear' or 'quadratic'.")
    rows, cols = joint.sum(axis=1), joint.sum(axis=0)
    observed = float(np.sum(w * joint))
    chance = float(rows @ w @ cols)
    if 1 - chance <= _CHANCE_TOLERANCE:
        return _perfect(n, 2)
    kappa = (observed - chance) / (1 - chance)
    row_weights, col_weights = w @ cols, rows @ w
    spread = np.sum(joint * (w - (1 - kappa) * (row_weights[:, None] + col_weights[None, :])) ** 2)
    variance = (spread - (kappa - chance * (1 - kappa)) ** 2) / (n * (1 - chance) ** 2)
    return AgreementResult(
        coefficient=float(kappa),
        standard_error=float(np.sqrt(max(variance, 0.0))),
        observed=observed,
        chance=chance,
        n_units=n,
        n_raters=2,
    )


def _category_values(categories: ArrayLike) -> FloatArray:
    cats = np.unique(np.asarray(categories, dtype=float).ravel())
    if cats.size == 0:
        raise ValueError("At least one category is needed.")
    if not np.isfinite(cats).all():
        raise ValueError("Categories must be finite numbers.")
    return cats


def _count_matrix(ratings: ArrayLike, categories: ArrayLike | None) -> tuple[FloatArray, FloatArray, int]:
    """Units x categories counts (units with at least one rating), sorted categories, rater count."""
    data = np.asarray(ratings, dtype=float)
    if data.ndim != 2:
        raise ValueError("Ratings must be a 2-D units x raters array.")
    if data.size == 0:
        raise ValueError("Ratings are empty.")
    present = ~np.isnan(data)
    values = data[present]
    if values.size == 0:
        raise ValueError("Ratings hold no rating: every cell is missing.")
    if not np.isfinite(values).all():
        raise ValueError("Ratings must be finite numbers or NaN.")
    cats = np.unique(values) if categories is None else _category_values(categories)
    # unique + searchsorted: several times faster than np.unique(return_inverse=True) on 1e6 values.
    codes = np.minimum(np.searchsorted(cats, values), cats.size - 1)
    unknown = cats[codes] != values
    if unknown.any():
        raise ValueError(f"Ratings hold values outside categories: {np.unique(values[unknown])[:5]}.")
    n_units, n_raters = data.shape
    q = cats.size
    unit_of_value = np.nonzero(present)[0]  # row-major, the order of data[present]
    counts = np.bincount(unit_of_value * q + codes, minlength=n_units * q).reshape(n_units, q)
    rated = np.bincount(unit_of_value, minlength=n_units) > 0
    counts = counts[rated].astype(np.float64)
    return counts, cats, n_raters


def _resolve_weights(weights: WeightKind | ArrayLike, categories: FloatArray) -> FloatArray:
    if isinstance(weights, str):
        return weight_matrix(categories, cast(WeightKind, weights))
    w = np.asarray(weights, dtype=float)
    q = categories.size
    if w.shape != (q, q):
        raise ValueError(f"Weight matrix must be {q}x{q} for the categories {categories.tolist()}.")
    if not np.isfinite(w).all() or (w < 0).any() or (w > 1).any() or not np.allclose(np.diag(w), 1):
        raise ValueError("Weights must lie in [0, 1] with 1 on the diagonal.")
    return w


def _level_weights(values: FloatArray, pairable_counts: FloatArray, level: KrippendorffLevel) -> FloatArray:
    """Agreement weights ``1 - d / max(d)`` for the krippendorff package's distance at ``level``."""
    if level == "nominal":
        return np.eye(values.size)
    k, m = values[:, None], values[None, :]
    if level == "interval":
        return _from_disagreement((k - m) ** 2)
    if level == "ratio":
        total = k + m
        ratio = np.divide(k - m, total, out=np.zeros_like(total), where=total != 0)
        return _from_disagreement(ratio**2)
    rank = np.arange(values.size)
    low, high = np.minimum.outer(rank, rank), np.maximum.outer(rank, rank)
    cumulative = np.cumsum(pairable_counts)
    between = cumulative[high] - cumulative[low] + pairable_counts[low]
    ends = (pairable_counts[:, None] + pairable_counts[None, :]) / 2
    return _from_disagreement((between - ends) ** 2)


def _from_disagreement(distance: FloatArray) -> FloatArray:
    """Agreement weights ``1 - d / max(d)``; all ones when every distance is 0."""
    largest = distance.max()
    if largest == 0:
        return np.ones_like(distance, dtype=float)
    return 1 - distance / largest


def _agreeing_pairs(counts: FloatArray, w: FloatArray) -> FloatArray:
    """Per unit, the weighted number of ordered pairs of distinct ratings that agree:
    ``sum_k r_ik (r*_ik - 1) = sum_kl r_ik w_kl r_il - r_i``, ``r*_ik = sum_l w_kl r_il``."""
    return np.einsum("ik,ik->i", counts, counts @ w.T) - _ratings_per_unit(counts)


def _ratings_per_unit(counts: FloatArray) -> FloatArray:
    # A matrix-vector product: several times faster than counts.sum(axis=1) on a narrow matrix.
    return counts @ np.ones(counts.shape[1])


def _unit_agreement(counts: FloatArray, w: FloatArray, per_unit: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Per-unit observed agreement ``p_a|i`` (0 for units rated once) and the mask of units rated
    at least twice."""
    paired = per_unit >= 2
    if not paired.any():
        raise ValueError("No unit has two or more ratings: agreement is undefined.")
    pairs = np.where(paired, per_unit * (per_unit - 1), 1.0)
    return np.where(paired, _agreeing_pairs(counts, w) / pairs, 0.0), paired


def _standard_error(terms: FloatArray, estimate: float) -> float | None:
    """Gwet's linearisation variance ``sum_i (t_i - estimate)**2 / (n (n - 1))`` (f = 0)."""
    n = terms.size
    if n < 2:
        return None
    return float(np.sqrt(np.sum((terms - estimate) ** 2) / (n * (n - 1))))


def _perfect(n_units: int, n_raters: int) -> AgreementResult:
    """The degenerate case where chance agreement is 1, which forces observed agreement to 1 too
    (weights lie in [0, 1] with a unit diagonal; see the module docstring)."""
    return AgreementResult(
        coefficient=1.0,
        standard_error=0.0,
        observed=1.0,
        chance=1.0,
        n_units=n_units,
        n_raters=n_raters,
    )
