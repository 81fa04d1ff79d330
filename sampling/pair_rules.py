"""Pairs chosen by the reward model (active learning): given K sampled candidates for one prompt and
their rewards, pick the two a person should compare. No Django imports.

Rules (the policy names one):

* ``uncertain`` — the smallest reward gap: the pair the reward model can least tell apart, where a
  human label teaches it most.
* ``best_worst`` — the largest gap: the best candidate against the worst, the contrast Llama 2's
  rejection sampling exploits (3.2.3).
* ``disagree`` — the helpfulness and the safety model order the two differently; among such pairs
  the one where both are most sure (the largest smaller gap). When no pair disagrees, the most
  uncertain pair by the helpfulness model is taken and the choice says so (``fallback``).

A pair must be two different, non-empty texts; when the candidates span several variants it takes
two different variants and, when possible, two different temperatures (the protocol's pair: two
variants at varied temperature). Ties go to the lowest candidate indices, so a choice is repeatable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

UNCERTAIN, BEST_WORST, DISAGREE = "uncertain", "best_worst", "disagree"
RULES = (UNCERTAIN, BEST_WORST, DISAGREE)


@dataclass(frozen=True)
class Candidate:
    index: int
    variant_id: int
    temperature: float
    text: str
    reward: float  # what `uncertain` and `best_worst` rank on (the hybrid reward when a safety model is set)
    helpfulness: float | None = None  # the helpfulness model alone, for `disagree`
    safety: float | None = None  # the safety model alone, for `disagree`


@dataclass(frozen=True)
class Choice:
    first: int
    second: int
    rule: str
    gap: float
    fallback: bool = False


def eligible_pairs(candidates: Sequence[Candidate]) -> list[tuple[Candidate, Candidate]]:
    """The pairs the protocol allows, strictest first: different variants (when there are several)
    and temperatures, else different variants, else any two different non-empty texts."""
    usable = [c for c in candidates if c.text.strip()]
    pairs = [(a, b) for a, b in combinations(usable, 2) if a.text.strip() != b.text.strip()]
    several_variants = len({c.variant_id for c in usable}) > 1
    levels = []
    if several_variants:
        levels.append(lambda a, b: a.variant_id != b.variant_id and a.temperature != b.temperature)
        levels.append(lambda a, b: a.variant_id != b.variant_id)
    levels.append(lambda a, b: a.temperature != b.temperature)
    for allowed in levels:
        found = [(a, b) for a, b in pairs if allowed(a, b)]
        if found:
            return found
    return pairs


def choose_pair(candidates: Sequence[Candidate], rule: str) -> Choice | None:
    """The pair the rule picks, or None when no two candidates differ."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; use one of {', '.join(RULES)}")
    pairs = eligible_pairs(candidates)
    if not pairs:
        return None

    def order(a: Candidate, b: Candidate) -> tuple[int, int]:
        return (a.index, b.index)

    if rule == UNCERTAIN:
        a, b = min(pairs, key=lambda p: (abs(p[0].reward - p[1].reward), order(*p)))
        return Choice(a.index, b.index, rule, abs(a.reward - b.reward))
    if rule == BEST_WORST:
        a, b = min(pairs, key=lambda p: (-abs(p[0].reward - p[1].reward), order(*p)))
        return Choice(a.index, b.index, rule, abs(a.reward - b.reward))
    if any(c.helpfulness is None or c.safety is None for c in candidates):
        raise ValueError("the disagree rule needs a helpfulness and a safety score for every candidate")
    disagreeing = [(a, b) for a, b in pairs if (a.helpfulness - b.helpfulness) * (a.safety - b.safety) < 0]
    if disagreeing:
        a, b = min(
            disagreeing,
            key=lambda p: (-min(abs(p[0].helpfulness - p[1].helpfulness), abs(p[0].safety - p[1].safety)), order(*p)),
        )
        return Choice(a.index, b.index, rule, min(abs(a.helpfulness - b.helpfulness), abs(a.safety - b.safety)))
    a, b = min(pairs, key=lambda p: (abs(p[0].helpfulness - p[1].helpfulness), order(*p)))
    return Choice(a.index, b.index, rule, abs(a.helpfulness - b.helpfulness), fallback=True)
