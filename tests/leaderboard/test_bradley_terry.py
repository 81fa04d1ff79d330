"""The Bradley–Terry fit with Davidson ties: a case solved by hand, the reference fit of `choix`
(plain Bradley–Terry, no ties), recovery of known strengths from simulated votes, intervals,
the win-rate matrix and the comparison graph's parts."""

import math

import choix
import numpy as np
import pytest

from leaderboard import bradley_terry as bt


def votes(i, j, wins, losses, ties=0):
    return [(i, j, bt.WIN)] * wins + [(i, j, bt.LOSS)] * losses + [(i, j, bt.TIE)] * ties


def test_two_items_with_ties_match_the_closed_form():
    # Davidson's likelihood for two items is a multinomial over (i wins, j wins, tie): its maximum
    # puts the probabilities at the observed shares, 6/10, 2/10, 2/10. Writing r = sqrt(pi_i / pi_j):
    # r^2 = 6/2 = 3 and nu / r = 2/6, so theta_i - theta_j = log 3 and nu = 2 / sqrt(12).
    fitted = bt.fit(bt.count_outcomes(2, votes(0, 1, 6, 2, 2)), prior=0)
    assert fitted.strengths[0] - fitted.strengths[1] == pytest.approx(math.log(3), abs=1e-6)
    assert fitted.tie_parameter == pytest.approx(2 / math.sqrt(12), abs=1e-6)
    assert bt.win_probability(fitted, 0, 1) == pytest.approx((0.6, 0.2, 0.2), abs=1e-6)


def test_without_ties_it_is_plain_bradley_terry_as_choix_fits_it():
    rng = np.random.default_rng(3)
    data = []
    for _ in range(120):
        i, j = rng.choice(5, size=2, replace=False)
        data.append((int(i), int(j)) if rng.random() < 0.5 + 0.1 * (j - i) else (int(j), int(i)))
    reference = choix.opt_pairwise(5, data, alpha=0.05)
    fitted = bt.fit(bt.count_outcomes(5, [(w, lo, bt.WIN) for w, lo in data]), prior=0.1)
    assert fitted.tie_parameter == 0
    np.testing.assert_allclose(fitted.strengths, reference - reference.mean(), atol=1e-5)


def test_a_cycle_of_equal_records_gives_equal_strengths():
    data = votes(0, 1, 3, 1) + votes(1, 2, 3, 1) + votes(2, 0, 3, 1)
    fitted = bt.fit(bt.count_outcomes(3, data), prior=0)
    np.testing.assert_allclose(fitted.strengths, 0, atol=1e-6)


def test_a_tie_counts_as_half_a_win_in_the_fitted_totals():
    data = votes(0, 1, 5, 2, 3) + votes(1, 2, 4, 4, 2) + votes(0, 2, 2, 1, 1)
    counts = bt.count_outcomes(3, data)
    fitted = bt.fit(counts, prior=0)
    expected = np.zeros(3)
    for i, j, n in zip(counts.first, counts.second, counts.total, strict=True):
        p_i, p_j, p_t = bt.win_probability(fitted, i, j)
        expected[i] += n * (p_i + p_t / 2)
        expected[j] += n * (p_j + p_t / 2)
    # Davidson's score equations: each item's expected wins plus half ties equal the observed.
    np.testing.assert_allclose(expected, [5 + 1.5 + 2 + 0.5, 2 + 1.5 + 4 + 1, 4 + 1 + 1 + 0.5], atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_known_strengths_from_simulated_votes(seed):
    rng = np.random.default_rng(seed)
    truth = np.array([-1.2, -0.4, 0.0, 0.5, 1.1])
    truth = truth - truth.mean()
    nu = 0.6
    data = []
    for _ in range(10000):
        i, j = (int(x) for x in rng.choice(5, size=2, replace=False))
        weights = np.array([math.exp(truth[i]), math.exp(truth[j]), nu * math.exp((truth[i] + truth[j]) / 2)])
        outcome = rng.choice(3, p=weights / weights.sum())
        data.append((i, j, (bt.WIN, bt.LOSS, bt.TIE)[outcome]))
    fitted = bt.fit(bt.count_outcomes(5, data), prior=0)
    np.testing.assert_allclose(fitted.strengths, truth, atol=0.1)
    assert fitted.tie_parameter == pytest.approx(nu, abs=0.08)
    assert list(np.argsort(fitted.strengths)) == [0, 1, 2, 3, 4]
    interval = bt.bootstrap(5, data, samples=60, seed=seed, start=fitted, prior=0)
    inside = (interval.low <= truth) & (truth <= interval.high)
    assert inside.sum() >= 4  # 95% intervals: all five, or at worst one miss
    assert np.all(interval.high - interval.low < 0.3)


def test_bootstrap_is_reproducible_and_narrows_with_more_votes():
    few = votes(0, 1, 6, 4) + votes(1, 2, 6, 4)
    many = few * 10
    first = bt.bootstrap(3, few, samples=80, seed=7)
    again = bt.bootstrap(3, few, samples=80, seed=7)
    np.testing.assert_array_equal(first.low, again.low)
    wide = bt.bootstrap(3, many, samples=80, seed=7)
    assert np.all(wide.high - wide.low < first.high - first.low)


def test_win_rates_and_disconnected_parts():
    data = votes(0, 1, 3, 1, 2) + votes(2, 3, 1, 1)
    counts = bt.count_outcomes(5, data)
    rate, met = bt.win_rates(counts)
    assert rate[0, 1] == pytest.approx((3 + 1) / 6)
    assert rate[1, 0] == pytest.approx((1 + 1) / 6)
    assert met[0, 1] == met[1, 0] == 6
    assert math.isnan(rate[0, 2]) and met[0, 2] == 0
    assert bt.components(counts) == [[0, 1], [2, 3], [4]]
    # Each part keeps its own mean near zero under the prior, and the fit stays finite.
    fitted = bt.fit(counts)
    assert np.all(np.isfinite(fitted.strengths))


def test_rejects_bad_votes():
    with pytest.raises(ValueError):
        bt.count_outcomes(2, [(0, 0, bt.WIN)])
    with pytest.raises(ValueError):
        bt.count_outcomes(2, [(0, 2, bt.WIN)])
    with pytest.raises(ValueError):
        bt.count_outcomes(2, [(0, 1, 0.3)])
