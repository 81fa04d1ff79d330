"""The pair policy's draws: which two variants and which two temperatures sample a pair.

Llama 2 (3.2.1) samples the two responses of a comparison "from two different model variants, and
varying the temperature hyper-parameter". This module makes those draws from a seeded
``random.Random``, so a job re-run after a crash makes the same choices. No Django imports.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

# Temperatures above this make small chat models write noise; below 0 is meaningless.
MAX_TEMPERATURE = 2.0
# Drawn temperatures are rounded so that they read well in exports and on the researcher pages.
TEMPERATURE_DECIMALS = 2


class PolicyError(ValueError):
    """A pair policy that cannot produce pairs as the protocol asks."""


@dataclass(frozen=True)
class TemperatureSpec:
    """Either a set of temperatures (``mode="set"``) or an inclusive range ``[low, high]``."""

    mode: str
    values: tuple[float, ...]

    @classmethod
    def parse(cls, mode: str, values: Sequence[float]) -> TemperatureSpec:
        """Validate and normalise; raises :class:`PolicyError` with a message a researcher can act on."""
        try:
            numbers = tuple(float(v) for v in values)
        except (TypeError, ValueError):
            raise PolicyError("Temperatures must be numbers, e.g. 0.6, 0.8, 1.0.") from None
        if any(not math.isfinite(t) or t < 0 or t > MAX_TEMPERATURE for t in numbers):
            raise PolicyError(f"Temperatures must lie between 0 and {MAX_TEMPERATURE:g}.")
        if mode == "set":
            distinct = tuple(sorted(set(numbers)))
            if len(distinct) < 2:
                raise PolicyError("Give at least two different temperatures: each pair takes two different ones.")
            return cls("set", distinct)
        if mode == "range":
            if len(numbers) != 2 or round(numbers[0], TEMPERATURE_DECIMALS) >= round(numbers[1], TEMPERATURE_DECIMALS):
                raise PolicyError("A temperature range is [lowest, highest] with the lowest below the highest.")
            return cls("range", numbers)
        raise PolicyError(f"Unknown temperature mode {mode!r}; use 'set' or 'range'.")

    def describe(self) -> str:
        if self.mode == "set":
            return "{" + ", ".join(f"{t:g}" for t in self.values) + "}"
        return f"{self.values[0]:g}–{self.values[1]:g}"

    def draw_two(self, rng: random.Random) -> tuple[float, float]:
        """Two different temperatures, in random order."""
        if self.mode == "set":
            first, second = rng.sample(self.values, 2)
            return first, second
        low, high = self.values
        first = round(rng.uniform(low, high), TEMPERATURE_DECIMALS)
        while True:
            second = round(rng.uniform(low, high), TEMPERATURE_DECIMALS)
            if second != first:
                return first, second


@dataclass(frozen=True)
class SideDraw:
    """How one side of a pair is sampled."""

    variant_id: int
    temperature: float
    seed: int


def draw_pair(
    variant_ids: Sequence[int], temperatures: TemperatureSpec, rng: random.Random
) -> tuple[SideDraw, SideDraw]:
    """Two different variants when at least two are eligible (else the one twice), two different
    temperatures, and a sampling seed for each side."""
    if not variant_ids:
        raise PolicyError("The pair policy has no eligible model variant.")
    eligible = sorted(set(variant_ids))
    first, second = rng.sample(eligible, 2) if len(eligible) >= 2 else (eligible[0], eligible[0])
    t_first, t_second = temperatures.draw_two(rng)
    return (
        SideDraw(first, t_first, new_seed(rng)),
        SideDraw(second, t_second, new_seed(rng)),
    )


def new_seed(rng: random.Random) -> int:
    """A sampling seed that fits a signed 64-bit column and torch's ``manual_seed``."""
    return rng.getrandbits(63)


def draw_candidates(
    variant_ids: Sequence[int], temperatures: TemperatureSpec, k: int, rng: random.Random
) -> list[SideDraw]:
    """K sides for a reward-model-chosen pair: the eligible variants taken in turn (in a random
    order) and temperatures spread the same way over the set (or drawn from the range), so the K
    candidates cover the policy before the reward model picks two of them."""
    if not variant_ids:
        raise PolicyError("The pair policy has no eligible model variant.")
    if k < 2:
        raise PolicyError("A reward-model-chosen pair needs at least two candidates.")
    variants = sorted(set(variant_ids))
    rng.shuffle(variants)
    if temperatures.mode == "set":
        values = list(temperatures.values)
        rng.shuffle(values)
        # Shift the temperature cycle by one at each round of the variants, so each variant meets
        # several temperatures and, over enough candidates, every one.
        n = len(variants)
        chosen_temperatures = [values[(i % n + i // n) % len(values)] for i in range(k)]
    else:
        low, high = temperatures.values
        chosen_temperatures = [round(rng.uniform(low, high), TEMPERATURE_DECIMALS) for _ in range(k)]
    return [SideDraw(variants[i % len(variants)], chosen_temperatures[i], new_seed(rng)) for i in range(k)]
