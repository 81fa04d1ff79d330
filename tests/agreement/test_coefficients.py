"""agreement.coefficients against the reference packages and published figures.

The reference values in fixtures/agreement_reference.json were computed by irrCAC 0.4.4 and
krippendorff 0.9.0 (scripts/make_agreement_fixtures.py, provenance in the file); sklearn is called
directly. Nothing here compares against numbers produced by agreement.coefficients itself.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from agreement.coefficients import (
    AgreementResult,
    cohen_kappa,
    fleiss_kappa,
    gwet_ac,
    krippendorff_alpha,
    weight_matrix,
)

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "agreement_reference.json").read_text())
DATASETS = REFERENCE["datasets"]
# The fixture keeps irrCAC's figures to 15 digits, so far tighter than the 1e-4 a report shows.
TOLERANCE = 1e-9
FIGURES = ("coefficient", "standard_error", "observed", "chance")
SIGNED_SCALE = [-4, -3, -2, -1, 1, 2, 3, 4]

WEIGHTED_CASES = [(name, scheme) for name, data in DATASETS.items() for scheme in data["irrcac"]]
LEVEL_CASES = [(name, level) for name, data in DATASETS.items() for level in data["krippendorff"]]
MULTI_RATER = {"gwet": gwet_ac, "fleiss": fleiss_kappa}


def ratings_of(name: str) -> np.ndarray:
    return np.array(DATASETS[name]["ratings"], dtype=float)  # JSON null -> NaN


def assert_figures(result: AgreementResult, expected: dict) -> None:
    for figure in FIGURES:
        assert getattr(result, figure) == pytest.approx(expected[figure], abs=TOLERANCE), figure


@pytest.mark.parametrize("method", sorted(MULTI_RATER))
@pytest.mark.parametrize(("dataset", "scheme"), WEIGHTED_CASES)
def test_gwet_and_fleiss_match_irrcac(dataset: str, scheme: str, method: str) -> None:
    reference = DATASETS[dataset]["irrcac"][scheme]
    result = MULTI_RATER[method](ratings_of(dataset), categories=DATASETS[dataset]["categories"], weights=scheme)
    assert_figures(result, reference[method])
    assert result.n_units == reference["n_units"]
    assert result.n_raters == ratings_of(dataset).shape[1]


@pytest.mark.parametrize(("dataset", "scheme"), WEIGHTED_CASES)
def test_weight_matrix_matches_irrcac(dataset: str, scheme: str) -> None:
    ratings = ratings_of(dataset)
    categories = DATASETS[dataset]["categories"] or np.unique(ratings[~np.isnan(ratings)])
    expected = np.array(DATASETS[dataset]["irrcac"][scheme]["weights"])
    np.testing.assert_allclose(weight_matrix(categories, scheme), expected, atol=1e-12)


@pytest.mark.parametrize(("dataset", "level"), LEVEL_CASES)
def test_krippendorff_alpha_matches_package_and_irrcac(dataset: str, level: str) -> None:
    reference = DATASETS[dataset]["krippendorff"][level]
    result = krippendorff_alpha(ratings_of(dataset), level=level)
    assert result.coefficient == pytest.approx(reference["alpha"], abs=TOLERANCE)
    assert_figures(result, reference["irrcac"])


@pytest.mark.parametrize(("level", "scheme"), [("nominal", "identity"), ("interval", "quadratic")])
@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_krippendorff_levels_equal_irrcac_weighted_alpha(dataset: str, level: str, scheme: str) -> None:
    """irrCAC's own alpha with identity / quadratic weights is the nominal / interval alpha.

    Observed and chance agreement depend on the scale of the weights (irrCAC's quadratic weights
    span the declared categories), the coefficient and its standard error do not."""
    result = krippendorff_alpha(ratings_of(dataset), level=level)
    expected = DATASETS[dataset]["irrcac"][scheme]["krippendorff"]
    assert result.coefficient == pytest.approx(expected["coefficient"], abs=TOLERANCE)
    assert result.standard_error == pytest.approx(expected["standard_error"], abs=TOLERANCE)


@pytest.mark.parametrize(
    ("compute", "coefficient"),
    [
        (lambda r: gwet_ac(r), 0.77544),
        (lambda r: fleiss_kappa(r), 0.76117),
        (lambda r: krippendorff_alpha(r, "nominal"), 0.74342),
        (lambda r: gwet_ac(r, weights="quadratic"), 0.91400),
        (lambda r: fleiss_kappa(r, weights="quadratic"), 0.86494),
        (lambda r: krippendorff_alpha(r, "interval"), 0.84911),
    ],
    ids=["AC1", "Fleiss", "alpha-nominal", "AC2-quadratic", "Fleiss-quadratic", "alpha-interval"],
)
def test_published_raw4raters_figures(compute, coefficient: float) -> None:
    """Gwet (2014) / irrCAC documentation, cac.raw4raters: 12 units x 4 raters, categories 1-5."""
    result = compute(ratings_of("raw4raters"))
    assert result.coefficient == pytest.approx(coefficient, abs=5e-6)


def test_published_raw4raters_ac1_standard_error_and_shares() -> None:
    result = gwet_ac(ratings_of("raw4raters"))
    assert result.standard_error == pytest.approx(0.14295, abs=5e-6)
    assert result.observed == pytest.approx(0.81818, abs=5e-6)
    assert result.chance == pytest.approx(0.19032, abs=5e-6)
    assert (result.n_units, result.n_raters) == (12, 4)


def test_custom_weight_matrix_gives_the_named_weights_result() -> None:
    ratings = ratings_of("signed8")
    matrix = weight_matrix(SIGNED_SCALE, "quadratic")
    assert gwet_ac(ratings, SIGNED_SCALE, matrix) == gwet_ac(ratings, SIGNED_SCALE, "quadratic")
    assert fleiss_kappa(ratings, SIGNED_SCALE, matrix) == fleiss_kappa(ratings, SIGNED_SCALE, "quadratic")


def test_declared_unused_categories_change_gwet_but_not_alpha() -> None:
    ratings = ratings_of("signed8_declared")
    declared = gwet_ac(ratings, categories=SIGNED_SCALE, weights="quadratic")
    observed_only = gwet_ac(ratings, weights="quadratic")
    assert declared.coefficient > observed_only.coefficient + 0.1  # p_e shrinks with q and T_w
    reference = DATASETS["signed8_declared"]["irrcac"]["quadratic"]["gwet"]["coefficient"]
    assert declared.coefficient == pytest.approx(reference, abs=TOLERANCE)


def test_rater_and_unit_order_do_not_matter() -> None:
    ratings = ratings_of("nominal3")
    rng = np.random.default_rng(0)
    shuffled = ratings[rng.permutation(ratings.shape[0])][:, rng.permutation(ratings.shape[1])]
    for compute in (gwet_ac, fleiss_kappa, krippendorff_alpha):
        original, reordered = compute(ratings).as_dict(), compute(shuffled).as_dict()
        assert reordered == pytest.approx(original, abs=1e-12)


@pytest.mark.parametrize("scheme", ["linear", "quadratic"])
def test_value_weights_ignore_an_affine_relabelling(scheme: str) -> None:
    ratings = ratings_of("signed8")
    relabelled = 3 * ratings + 10
    assert gwet_ac(relabelled, weights=scheme).coefficient == pytest.approx(
        gwet_ac(ratings, weights=scheme).coefficient, abs=1e-12
    )
    assert krippendorff_alpha(relabelled, "interval").coefficient == pytest.approx(
        krippendorff_alpha(ratings, "interval").coefficient, abs=1e-12
    )


def test_accepts_a_dataframe() -> None:
    pandas = pytest.importorskip("pandas")
    ratings = ratings_of("raw4raters")
    assert gwet_ac(pandas.DataFrame(ratings)) == gwet_ac(ratings)


# Cohen's kappa -------------------------------------------------------------------------------------


def two_raters(seed: int, scale: list[int], n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.choice(scale, size=n).astype(float)
    b = np.where(rng.random(n) < 0.6, a, rng.choice(scale, size=n))
    a[rng.random(n) < 0.05] = np.nan
    b[rng.random(n) < 0.05] = np.nan
    return a, b


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize(
    ("seed", "scale"), [(1, [0, 1]), (2, [1, 2, 3, 4, 5]), (3, SIGNED_SCALE), (4, [-20, 0, 7, 100])]
)
def test_cohen_kappa_matches_sklearn(seed: int, scale: list[float], weights: str | None) -> None:
    a, b = two_raters(seed, scale)
    both = ~np.isnan(a) & ~np.isnan(b)
    result = cohen_kappa(a, b, weights=weights)
    assert result.coefficient == pytest.approx(cohen_kappa_score(a[both], b[both], weights=weights), abs=1e-12)
    assert result.n_units == both.sum()


def test_cohen_kappa_when_one_rater_skips_a_category_matches_sklearn() -> None:
    a = np.array([1, 2, 3, 3, 2, 1, 1, 3, 2, 2], dtype=float)
    b = np.array([1, 2, 2, 3, 2, 1, 2, 3, 2, 1], dtype=float)
    a[a == 1] = 4  # rater a never uses 1, rater b never uses 4
    for weights in (None, "linear", "quadratic"):
        assert cohen_kappa(a, b, weights).coefficient == pytest.approx(
            cohen_kappa_score(a, b, weights=weights), abs=1e-12
        )


@pytest.mark.parametrize("scheme", ["identity", "linear", "quadratic"])
def test_cohen_kappa_standard_error_matches_irrcac(scheme: str) -> None:
    data = REFERENCE["cohen"]
    a, b = np.array(data["a"], dtype=float), np.array(data["b"], dtype=float)
    result = cohen_kappa(a, b, weights=None if scheme == "identity" else scheme)
    assert_figures(result, data["irrcac_table"][scheme])


# Edge cases ----------------------------------------------------------------------------------------

ALL_MULTI_RATER = [gwet_ac, fleiss_kappa, krippendorff_alpha]


@pytest.mark.parametrize("compute", ALL_MULTI_RATER)
def test_a_single_category_is_perfect_agreement(compute) -> None:
    ratings = np.array([[2, 2, np.nan], [2, 2, 2], [np.nan, 2, np.nan], [2, np.nan, 2]])
    result = compute(ratings)
    assert (result.coefficient, result.standard_error, result.observed, result.chance) == (1.0, 0.0, 1.0, 1.0)


def test_a_single_used_category_of_several_declared_is_perfect_for_gwet() -> None:
    ratings = np.array([[2, 2, np.nan], [2, 2, 2], [2, np.nan, 2]])
    result = gwet_ac(ratings, categories=[1, 2, 3])
    assert (result.coefficient, result.standard_error, result.chance) == (1.0, 0.0, 0.0)


def test_cohen_kappa_single_category_is_perfect_agreement() -> None:
    result = cohen_kappa([1, 1, 1], [1, 1, np.nan])
    assert (result.coefficient, result.standard_error, result.n_units) == (1.0, 0.0, 2)


@pytest.mark.parametrize("compute", ALL_MULTI_RATER)
def test_all_raters_agree_on_every_unit(compute) -> None:
    ratings = np.array([[1, 1, 1], [3, 3, np.nan], [2, 2, 2], [1, 1, 1], [4, np.nan, 4]], dtype=float)
    result = compute(ratings)
    assert result.coefficient == pytest.approx(1.0, abs=1e-12)
    assert result.observed == pytest.approx(1.0, abs=1e-12)
    assert result.standard_error == pytest.approx(0.0, abs=1e-12)


def test_a_unit_with_one_rating_enters_shares_but_not_observed_agreement() -> None:
    ratings = ratings_of("nominal3")
    with_single = np.vstack([ratings, [[np.nan, 2, np.nan, np.nan, np.nan]]])
    before, after = gwet_ac(ratings), gwet_ac(with_single)
    assert after.observed == pytest.approx(before.observed, abs=1e-15)
    assert after.n_units == before.n_units + 1
    assert after.chance != before.chance
    assert krippendorff_alpha(with_single) == krippendorff_alpha(ratings)  # alpha only uses pairable units


@pytest.mark.parametrize("compute", ALL_MULTI_RATER)
def test_units_without_ratings_are_ignored(compute) -> None:
    ratings = ratings_of("raw4raters")
    padded = np.vstack([np.full((3, 4), np.nan), ratings])
    assert compute(padded) == compute(ratings)


@pytest.mark.parametrize("compute", ALL_MULTI_RATER)
def test_a_single_unit_has_no_standard_error(compute) -> None:
    result = compute(np.array([[1, 2, 2]], dtype=float))
    assert result.standard_error is None
    assert result.n_units == 1


@pytest.mark.parametrize(
    "ratings",
    [
        np.empty((0, 3)),
        np.full((4, 3), np.nan),
        np.array([1.0, 2.0, 2.0]),
        np.array([[1, np.nan], [np.nan, 2]]),  # no unit with two ratings
        np.array([[1, np.inf], [2, 2]]),
    ],
    ids=["empty", "all-missing", "1-D", "no-pair", "infinite"],
)
@pytest.mark.parametrize("compute", ALL_MULTI_RATER)
def test_unusable_input_raises_value_error(compute, ratings: np.ndarray) -> None:
    with pytest.raises(ValueError):
        compute(ratings)


def test_cohen_kappa_unusable_input_raises_value_error() -> None:
    with pytest.raises(ValueError, match="both raters"):
        cohen_kappa([1, np.nan], [np.nan, 2])
    with pytest.raises(ValueError):
        cohen_kappa([1, 2, 3], [1, 2])
    with pytest.raises(ValueError):
        cohen_kappa([1, 2], [1, 2], weights="ordinal")  # type: ignore[arg-type]


def test_invalid_categories_and_weights_raise_value_error() -> None:
    ratings = ratings_of("raw4raters")
    with pytest.raises(ValueError, match="outside categories"):
        gwet_ac(ratings, categories=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="Unknown weights"):
        fleiss_kappa(ratings, weights="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="5x5"):
        gwet_ac(ratings, weights=np.eye(4))
    with pytest.raises(ValueError, match="diagonal"):
        gwet_ac(ratings, weights=np.full((5, 5), 0.5))
    with pytest.raises(ValueError, match="positive"):
        weight_matrix(SIGNED_SCALE, "ratio")
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha(ratings, level="cardinal")  # type: ignore[arg-type]


def test_as_dict_holds_every_field() -> None:
    result = gwet_ac(ratings_of("raw4raters"))
    assert result.as_dict() == {
        "coefficient": result.coefficient,
        "standard_error": result.standard_error,
        "observed": result.observed,
        "chance": result.chance,
        "n_units": 12,
        "n_raters": 4,
    }
