"""agreement.quality: published Wilson intervals and synthetic annotators of known reliability."""

import numpy as np
import pytest

from agreement.quality import (
    agreement_with_others,
    agreement_with_others_long,
    binomial_p_value,
    flag_outliers,
    gold_accuracy,
    holm_adjust,
    position_bias,
    robust_z_scores,
    share_unsure,
    swap_consistency,
    wilson_interval,
)

SIGNED_SCALE = np.array([-4, -3, -2, -1, 1, 2, 3, 4])


@pytest.mark.parametrize(
    ("successes", "total", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_interval_matches_newcombe_1998(successes: int, total: int, low: float, high: float) -> None:
    """Newcombe (1998), Stat. Med. 17:857-872: the worked examples, Wilson score method without
    continuity correction."""
    assert wilson_interval(successes, total) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_widens_with_confidence_and_rejects_bad_input() -> None:
    low95, high95 = wilson_interval(30, 50, 0.95)
    low99, high99 = wilson_interval(30, 50, 0.99)
    assert low99 < low95 < 0.6 < high95 < high99
    for args in [(1, 0), (5, 4), (-1, 4), (1, 4, 1.0)]:
        with pytest.raises(ValueError):
            wilson_interval(*args)


def simulate_left_choices(rng: np.random.Generator, left_probability: float, n: int) -> int:
    return int((rng.random(n) < left_probability).sum())


def test_position_bias_separates_a_biased_annotator_from_a_fair_one() -> None:
    rng = np.random.default_rng(7)
    fair = position_bias(simulate_left_choices(rng, 0.5, 400), 400)
    biased = position_bias(simulate_left_choices(rng, 0.65, 400), 400)
    assert not fair.significant
    assert fair.low < 0.5 < fair.high
    assert biased.significant
    assert biased.low > 0.5
    assert biased.left_share == pytest.approx(0.65, abs=0.05)
    assert biased.distance_from_half == pytest.approx(biased.left_share - 0.5)


def test_position_bias_figures_for_a_known_count() -> None:
    result = position_bias(81, 263)
    assert result.left_share == pytest.approx(81 / 263)
    assert result.distance_from_half == pytest.approx(0.5 - 81 / 263)
    assert (result.low, result.high) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert result.significant and result.total == 263


def test_agreement_with_others_on_a_hand_checked_table() -> None:
    ratings = np.array(
        [
            [1, 1, 1],  # others 1, 1 -> agree
            [1, 2, 2],  # others 2, 2 -> disagree
            [2, 1, np.nan],  # others 1 -> disagree
            [1, np.nan, np.nan],  # nobody else -> left out
            [2, 2, 1],  # others tie 2 vs 1 -> left out
            [np.nan, 3, 3],  # rater did not rate -> left out
        ]
    )
    result = agreement_with_others(ratings, rater=0)
    assert (result.successes, result.total) == (1, 3)
    other = agreement_with_others(ratings, rater=1)  # units 0, 2 and 5; the others tie on 1 and 4
    assert (other.successes, other.total) == (2, 3)


def test_agreement_with_others_ranks_synthetic_raters_by_reliability() -> None:
    rng = np.random.default_rng(11)
    n_units, accuracies = 2000, [0.95, 0.85, 0.85, 0.85, 0.3]
    truth = rng.choice(SIGNED_SCALE, size=n_units)
    ratings = np.stack(
        [np.where(rng.random(n_units) < acc, truth, rng.choice(SIGNED_SCALE, size=n_units)) for acc in accuracies],
        axis=1,
    ).astype(float)
    ratings[rng.random(ratings.shape) < 0.1] = np.nan
    shares = [agreement_with_others(ratings, rater).share for rater in range(len(accuracies))]
    assert shares[0] > max(shares[1:4]) > min(shares[1:4]) > shares[4]
    # With four mostly reliable others the majority is almost always the truth, so a rater's
    # agreement is close to P(rating == truth) = acc + (1 - acc) / 8.
    assert shares[0] == pytest.approx(0.95 + 0.05 / 8, abs=0.03)
    assert shares[4] == pytest.approx(0.3 + 0.7 / 8, abs=0.04)
    sides = agreement_with_others(np.sign(ratings), 4)
    assert sides.share > shares[4]  # agreeing on the side is easier than on the exact level


def test_agreement_with_others_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="column"):
        agreement_with_others(np.ones((3, 2)), rater=2)
    with pytest.raises(ValueError, match="majority"):
        agreement_with_others(np.array([[1, np.nan], [np.nan, 2]]), rater=0)


def test_gold_accuracy_of_a_synthetic_annotator() -> None:
    rng = np.random.default_rng(3)
    gold = rng.choice([0, 1], size=500).astype(float)
    answers = np.where(rng.random(500) < 0.8, gold, 1 - gold)
    answers[:20] = np.nan  # skipped
    result = gold_accuracy(answers, gold)
    assert result.total == 480
    assert result.low < 0.8 < result.high
    assert result.share == pytest.approx(np.mean(answers[20:] == gold[20:]))


def test_swap_consistency_of_careful_position_biased_and_random_annotators() -> None:
    rng = np.random.default_rng(5)
    n = 300
    better = rng.integers(2, size=n)  # id of the better response in each pair
    left_first = rng.integers(2, size=n)  # id shown on the left the first time; swapped the second time
    careful = swap_consistency(better, better)
    always_left = swap_consistency(left_first, 1 - left_first)
    random_choice = swap_consistency(rng.integers(2, size=n), rng.integers(2, size=n))
    assert (careful.share, always_left.share) == (1.0, 0.0)
    assert random_choice.low < 0.5 < random_choice.high
    assert swap_consistency([1, 0, np.nan], [1, 1, 0]).total == 2


def test_share_unsure_on_the_signed_scale() -> None:
    ratings = np.array([[-1, 1, 4], [2, np.nan, -1], [3, -4, 1]])
    result = share_unsure(np.abs(ratings), unsure_value=1)
    assert (result.successes, result.total) == (4, 8)
    with pytest.raises(ValueError):
        share_unsure([np.nan], unsure_value=1)


def test_robust_z_scores_and_outlier_flags() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    # median 3, MAD = median(2, 1, 0, 1, 97) = 1
    np.testing.assert_allclose(robust_z_scores(values), 0.6745 * (values - 3))
    np.testing.assert_array_equal(flag_outliers(values), [False, False, False, False, True])
    np.testing.assert_array_equal(flag_outliers(values, tail="low"), [False] * 5)
    accuracies = np.array([0.91, 0.93, 0.9, 0.92, 0.6, 0.94, np.nan])
    np.testing.assert_array_equal(flag_outliers(accuracies, tail="low"), [0, 0, 0, 0, 1, 0, 0])
    with pytest.raises(ValueError, match="tail"):
        flag_outliers(values, tail="middle")  # type: ignore[arg-type]


def test_robust_z_scores_when_most_values_are_equal() -> None:
    values = np.array([0.5, 0.5, 0.5, 0.5, 0.9])  # MAD = 0: scaled mean absolute deviation instead
    scores = robust_z_scores(values)
    np.testing.assert_allclose(scores, (values - 0.5) / (1.2533 * 0.08))
    assert flag_outliers(values).tolist() == [False, False, False, False, True]
    np.testing.assert_array_equal(robust_z_scores([2.0, 2.0, 2.0]), [0.0, 0.0, 0.0])


def test_agreement_with_others_long_equals_the_units_x_raters_version() -> None:
    rng = np.random.default_rng(11)
    ratings = rng.choice(SIGNED_SCALE, size=(300, 6)).astype(float)
    ratings[rng.random(ratings.shape) < 0.4] = np.nan
    units, raters = np.nonzero(~np.isnan(ratings))
    rater_ids = raters * 7 + 100  # any integer ids
    by_rater = agreement_with_others_long(units + 5000, rater_ids, ratings[units, raters])
    for rater in range(6):
        assert by_rater[rater * 7 + 100] == agreement_with_others(ratings, rater)
    signs = agreement_with_others_long(units, raters, np.sign(ratings[units, raters]))
    assert signs[2] == agreement_with_others(np.sign(ratings), 2)


def test_agreement_with_others_long_leaves_out_raters_with_nothing_to_compare() -> None:
    # unit 0: raters 1 and 2 agree, rater 3 differs; unit 1: rater 4 alone.
    result = agreement_with_others_long([0, 0, 0, 1], [1, 2, 3, 4], [1.0, 1.0, 0.0, 1.0])
    assert set(result) == {3}  # raters 1 and 2 see a 1-1 tie among the others; rater 4 has no others
    assert (result[3].successes, result[3].total) == (0, 1)
    assert agreement_with_others_long([], [], []) == {}
    with pytest.raises(ValueError, match="NaN"):
        agreement_with_others_long([0, 0], [1, 2], [1.0, np.nan])


@pytest.mark.parametrize(
    ("successes", "total", "alternative", "expected"),
    [
        # Hand-checked: C(10,0) + C(10,1) + C(10,2) = 56 of the 1024 outcomes lie at or below 2.
        (2, 10, "less", 56 / 1024),
        (2, 10, "two-sided", 112 / 1024),
        (8, 10, "two-sided", 112 / 1024),
        (8, 10, "greater", 56 / 1024),
        (5, 10, "two-sided", 1.0),
        (0, 5, "two-sided", 2 / 32),
    ],
)
def test_binomial_p_value_by_hand(successes: int, total: int, alternative: str, expected: float) -> None:
    assert binomial_p_value(successes, total, alternative=alternative) == pytest.approx(expected, rel=1e-9)


def test_binomial_p_value_matches_scipy_binomtest_for_an_uneven_null() -> None:
    from scipy.stats import binomtest

    for successes, total, p0 in [(3, 20, 0.3), (31, 40, 0.6), (9, 9, 0.8)]:
        for alternative in ("two-sided", "less", "greater"):
            expected = binomtest(successes, total, p0, alternative=alternative).pvalue
            assert binomial_p_value(successes, total, p0, alternative) == pytest.approx(expected, rel=1e-9)


def test_holm_adjust_by_hand() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 -> 4 x 0.005, 3 x 0.01, 2 x 0.03, max(1 x 0.04, 0.06).
    adjusted = holm_adjust([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    # Untested entries stay NaN and do not count towards m; large products are capped at 1.
    np.testing.assert_allclose(holm_adjust([0.4, np.nan, 0.3]), [0.6, np.nan, 0.6])
    np.testing.assert_allclose(holm_adjust([0.9, 0.8]), [1.0, 1.0])
    assert holm_adjust([]).size == 0
    with pytest.raises(ValueError):
        holm_adjust([1.5])


def test_holm_keeps_fair_annotators_unflagged_where_uncorrected_tests_do_not() -> None:
    """1,000 crowds of 40 fair annotators (100 ratings each): uncorrected two-sided tests at 5% flag
    someone in most crowds; Holm flags someone in at most about 5%."""
    rng = np.random.default_rng(11)
    crowds_with_a_flag, uncorrected = 0, 0
    for _ in range(1000):
        p = [binomial_p_value(int(k), 100) for k in rng.binomial(100, 0.5, size=40)]
        crowds_with_a_flag += bool(np.any(holm_adjust(p) < 0.05))
        uncorrected += bool(np.any(np.array(p) < 0.05))
    assert crowds_with_a_flag <= 70
    assert uncorrected > 500
