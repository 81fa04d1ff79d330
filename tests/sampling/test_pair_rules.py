"""The reward model's pair rules on fixed scores: the most uncertain pair, best against worst, and
the pair the helpfulness and safety models disagree on; which pairs are allowed at all; and the K
candidate draws that feed them."""

import random

import pytest

from sampling.draws import PolicyError, TemperatureSpec, draw_candidates
from sampling.pair_rules import BEST_WORST, DISAGREE, UNCERTAIN, Candidate, choose_pair, eligible_pairs


def candidates(rewards, *, variants=None, temperatures=None, helpfulness=None, safety=None, texts=None):
    n = len(rewards)
    variants = variants or [i % 2 for i in range(n)]
    temperatures = temperatures or [0.6 + 0.2 * i for i in range(n)]
    return [
        Candidate(
            index=i,
            variant_id=variants[i],
            temperature=temperatures[i],
            text=texts[i] if texts else f"answer {i}",
            reward=rewards[i],
            helpfulness=helpfulness[i] if helpfulness else None,
            safety=safety[i] if safety else None,
        )
        for i in range(n)
    ]


def test_uncertain_takes_the_smallest_gap_and_best_worst_the_largest():
    # Variants alternate 0, 1, 0, 1: pairs must join different variants.
    pool = candidates([0.90, 0.20, 0.55, 0.52])
    uncertain = choose_pair(pool, UNCERTAIN)
    assert (uncertain.first, uncertain.second) == (2, 3) and uncertain.gap == pytest.approx(0.03)
    best_worst = choose_pair(pool, BEST_WORST)
    assert (best_worst.first, best_worst.second) == (0, 1) and best_worst.gap == pytest.approx(0.70)


def test_pairs_join_two_variants_even_when_one_variant_holds_the_closest_scores():
    # 0 and 2 are the same variant and nearly tied; the closest pair across variants is (2, 3).
    pool = candidates([0.50, 0.10, 0.51, 0.70])
    assert (choose_pair(pool, UNCERTAIN).first, choose_pair(pool, UNCERTAIN).second) == (2, 3)
    # With a single variant any two different temperatures do.
    single = candidates([0.50, 0.10, 0.51, 0.70], variants=[7, 7, 7, 7])
    assert (choose_pair(single, UNCERTAIN).first, choose_pair(single, UNCERTAIN).second) == (0, 2)


def test_identical_or_empty_texts_are_never_paired():
    pool = candidates([0.5, 0.5, 0.9, 0.1], variants=[1, 2, 3, 4], texts=["same", "same", "", "other"])
    assert {(a.index, b.index) for a, b in eligible_pairs(pool)} == {(0, 3), (1, 3)}
    assert choose_pair(candidates([0.5, 0.6], texts=["same", "same"]), UNCERTAIN) is None


def test_disagree_takes_the_pair_the_models_order_differently_where_both_are_surest():
    helpfulness = [0.9, 0.2, 0.6, 0.4]
    safety = [0.1, 0.8, 0.5, 0.45]
    pool = candidates([0] * 4, helpfulness=helpfulness, safety=safety)
    choice = choose_pair(pool, DISAGREE)
    # Cross-variant pairs: (0,1) disagree, min gap 0.7; (0,3) disagree, min 0.35; (1,2) disagree,
    # min 0.3; (2,3) disagree, min 0.05. The surest disagreement is (0, 1).
    assert (choice.first, choice.second, choice.fallback) == (0, 1, False)
    assert choice.gap == pytest.approx(0.7)


def test_disagree_falls_back_to_the_most_uncertain_by_helpfulness_and_says_so():
    pool = candidates([0] * 4, helpfulness=[0.9, 0.2, 0.6, 0.55], safety=[0.9, 0.2, 0.6, 0.55])
    choice = choose_pair(pool, DISAGREE)
    assert (choice.first, choice.second, choice.fallback) == (2, 3, True)
    with pytest.raises(ValueError, match="helpfulness and a safety score"):
        choose_pair(candidates([0.1, 0.2]), DISAGREE)
    with pytest.raises(ValueError, match="unknown rule"):
        choose_pair(pool, "loudest")


def test_candidate_draws_cover_the_variants_and_temperatures_and_repeat_with_the_seed():
    spec = TemperatureSpec.parse("set", [0.6, 0.8, 1.0])
    draws = draw_candidates([11, 12], spec, 6, random.Random(5))
    assert [d.variant_id for d in draws].count(11) == 3 and [d.variant_id for d in draws].count(12) == 3
    assert {d.temperature for d in draws} == {0.6, 0.8, 1.0}
    for variant in (11, 12):  # each variant meets more than one temperature
        assert len({d.temperature for d in draws if d.variant_id == variant}) > 1
    assert draws == draw_candidates([11, 12], spec, 6, random.Random(5))
    ranged = draw_candidates([11], TemperatureSpec.parse("range", [0.5, 1.0]), 4, random.Random(1))
    assert all(0.5 <= d.temperature <= 1.0 for d in ranged) and len({d.seed for d in ranged}) == 4
    with pytest.raises(PolicyError):
        draw_candidates([], spec, 4, random.Random(0))
