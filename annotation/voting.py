"""Majority vote over one comparison's ratings (pure; no Django).

The rule, also shown to researchers in docs/protocol.md:

* Choice: the response chosen by more raters. An even split (possible with an even overlap) is a
  tie: the comparison gets no label and the dataset builder leaves it out.
* Strength: the median strength among the raters on the majority side. With an even number of
  them the lower (weaker) of the two middle values is taken, so a label never claims a stronger
  preference than half of its supporters gave.
* Safety (safety batches): the most common safety bin among the majority side. Ties go to the bin
  that says more about unsafety: both unsafe, then chosen-safe-other-unsafe, then both safe.
* Vote: unanimous when every rater chose the same response, split when a majority did, tied otherwise.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

STRENGTH_RANK = {"negligibly_better": 0, "slightly_better": 1, "better": 2, "significantly_better": 3}
_STRENGTH_BY_RANK = {rank: name for name, rank in STRENGTH_RANK.items()}
SAFETY_TIE_ORDER = ("both_unsafe", "chosen_safe_other_unsafe", "both_safe")


@dataclass(frozen=True)
class Ballot:
    chosen: str  # "a" or "b"
    strength: str
    safety_label: str = ""


@dataclass(frozen=True)
class MajorityLabel:
    choice: str  # "a", "b", or "" when tied
    strength: str
    safety_label: str
    vote: str  # "unanimous", "split" or "tied"
    n_ratings: int


def majority_label(ballots: Sequence[Ballot]) -> MajorityLabel:
    if not ballots:
        raise ValueError("A majority label needs at least one rating.")
    counts = Counter(b.chosen for b in ballots)
    if counts["a"] == counts["b"]:
        return MajorityLabel(choice="", strength="", safety_label="", vote="tied", n_ratings=len(ballots))
    choice = "a" if counts["a"] > counts["b"] else "b"
    majority = [b for b in ballots if b.chosen == choice]

    ranks = sorted(STRENGTH_RANK[b.strength] for b in majority)
    strength = _STRENGTH_BY_RANK[ranks[(len(ranks) - 1) // 2]]

    safety_counts = Counter(b.safety_label for b in majority if b.safety_label)
    safety_label = ""
    if safety_counts:
        top = max(safety_counts.values())
        safety_label = next(label for label in SAFETY_TIE_ORDER if safety_counts.get(label) == top)

    vote = "unanimous" if len(majority) == len(ballots) else "split"
    return MajorityLabel(choice=choice, strength=strength, safety_label=safety_label, vote=vote, n_ratings=len(ballots))
