"""The pair policy's draws: two different variants (when there are two) and two different temperatures."""

import random

import pytest

from sampling.draws import PolicyError, SideDraw, TemperatureSpec, draw_pair


@pytest.mark.parametrize(
    ("mode", "values", "complaint"),
    [
        ("set", [0.7], "at least two different"),
        ("set", [0.7, 0.7], "at least two different"),
        ("set", [0.6, 2.5], "between 0 and 2"),
        ("set", [0.6, "hot"], "must be numbers"),
        ("range", [1.0, 0.5], "lowest below the highest"),
        ("range", [0.5, 0.8, 1.0], "lowest below the highest"),
        ("range", [0.5, 0.501], "lowest below the highest"),
        ("spread", [0.5, 1.0], "Unknown temperature mode"),
    ],
)
def test_unusable_temperatures_are_refused_with_a_reason(mode, values, complaint):
    with pytest.raises(PolicyError, match=complaint):
        TemperatureSpec.parse(mode, values)


def test_a_set_is_normalised_and_described():
    spec = TemperatureSpec.parse("set", [1.0, 0.6, 0.8, 0.6])
    assert spec.values == (0.6, 0.8, 1.0)
    assert spec.describe() == "{0.6, 0.8, 1}"
    assert TemperatureSpec.parse("range", [0.5, 1.2]).describe() == "0.5–1.2"


def test_pairs_take_two_different_variants_and_two_different_temperatures():
    rng = random.Random(3)
    spec = TemperatureSpec.parse("set", [0.6, 0.8, 1.0])
    seen_variants, seen_temperatures = set(), set()
    for _ in range(200):
        a, b = draw_pair([11, 12, 13], spec, rng)
        assert a.variant_id != b.variant_id
        assert a.temperature != b.temperature
        assert a.seed != b.seed
        seen_variants |= {a.variant_id, b.variant_id}
        seen_temperatures |= {a.temperature, b.temperature}
    assert seen_variants == {11, 12, 13}
    assert seen_temperatures == {0.6, 0.8, 1.0}


def test_a_single_eligible_variant_is_used_twice_at_two_temperatures():
    a, b = draw_pair([7], TemperatureSpec.parse("range", [0.5, 1.0]), random.Random(1))
    assert a.variant_id == b.variant_id == 7
    assert a.temperature != b.temperature
    assert 0.5 <= a.temperature <= 1.0 and 0.5 <= b.temperature <= 1.0
    assert round(a.temperature, 2) == a.temperature


def test_draws_are_reproducible_from_the_seed():
    spec = TemperatureSpec.parse("set", [0.6, 0.8, 1.0])
    # Pinned: a change to how a pair is drawn from its seed changes every stored job's meaning.
    assert draw_pair([1, 2, 3], spec, random.Random(42)) == (
        SideDraw(variant_id=3, temperature=0.6, seed=2058755736454904720),
        SideDraw(variant_id=1, temperature=0.8, seed=6792748013404602857),
    )
    assert draw_pair([1, 2, 3], spec, random.Random(42)) == draw_pair([1, 2, 3], spec, random.Random(42))
    # ... and the seed is what decides: twenty seeds give twenty different draws.
    assert len({draw_pair([1, 2, 3], spec, random.Random(seed)) for seed in range(20)}) == 20


def test_no_eligible_variant_is_an_error():
    with pytest.raises(PolicyError, match="no eligible model variant"):
        draw_pair([], TemperatureSpec.parse("set", [0.6, 1.0]), random.Random(0))
