"""Synthetic annotators of known reliability, rating a batch through the real services.

Each comparison gets a hidden better response. A "reliable" annotator picks it with probability
`accuracy`, a "contrarian" likewise with a low `accuracy` (mostly the worse one), a "random" one
flips a coin, a "left" one always picks the response shown on the left. Gold answers are the
hidden truth; repeats inherit their original's truth (by response, so
the mirrored sides do not matter to anyone but the left-picker).
"""

import random
from dataclasses import dataclass, field

from annotation import services
from annotation.models import Batch, Comparison
from tests.factories import ComparisonFactory

STRENGTHS = ["significantly_better", "better", "slightly_better", "negligibly_better"]


@dataclass(frozen=True)
class Policy:
    kind: str  # "reliable", "contrarian", "random" or "left"
    accuracy: float = 0.9
    seconds: tuple[float, float] = (40.0, 90.0)


RELIABLE = Policy("reliable", 0.92, (40.0, 90.0))
RANDOM = Policy("random", 0.5, (6.0, 12.0))
LEFT = Policy("left", 0.5, (15.0, 25.0))
CONTRARIAN = Policy("contrarian", 0.2, (40.0, 90.0))


@dataclass
class Crowd:
    batch: Batch
    better: dict[int, int]  # comparison id -> id of the better response
    gold: list[Comparison]
    ratings: dict[int, int] = field(default_factory=dict)  # annotator id -> ratings given


def seed_crowd(
    batch: Batch,
    policies: dict,
    *,
    comparisons: int,
    gold: int = 0,
    seed: int = 1,
    prompts: bool = False,
) -> Crowd:
    """Create `comparisons` pairs (the first `gold` of them gold) and let every annotator in
    `policies` (user -> Policy) take pairs round-robin until the batch has nothing left for them."""
    rng = random.Random(seed)
    pairs = [
        ComparisonFactory(batch=batch, prompt=f"Synthetic prompt {i}" if prompts else None) for i in range(comparisons)
    ]
    better = {c.id: rng.choice([c.response_a_id, c.response_b_id]) for c in pairs}
    for comparison in pairs[:gold]:
        choice = "a" if better[comparison.id] == comparison.response_a_id else "b"
        services.comparison_gold_mark(comparison_id=comparison.id, choice=choice, strength="better")
    crowd = Crowd(batch=batch, better=better, gold=pairs[:gold])
    active = list(policies)
    while active:
        for annotator in list(active):
            lease = services.assignment_next(annotator=annotator, batch=batch, rng=rng)
            if lease is None:
                active.remove(annotator)
                continue
            rate_as(policies[annotator], annotator, lease.assignment, crowd, rng)
    return crowd


def rate_as(policy: Policy, annotator, assignment, crowd: Crowd, rng: random.Random) -> None:
    comparison = assignment.comparison
    truth = crowd.better.get(comparison.repeat_of_id or comparison.id)
    other = comparison.response_b_id if truth == comparison.response_a_id else comparison.response_a_id
    if policy.kind == "left":
        chosen = comparison.response_for(assignment.left_side).id
        strength = "slightly_better"
    elif policy.kind == "random":
        chosen = rng.choice([comparison.response_a_id, comparison.response_b_id])
        strength = rng.choice(STRENGTHS)
    else:
        chosen = truth if rng.random() < policy.accuracy else other
        strength = rng.choices(STRENGTHS, weights=[3, 4, 2, 1])[0]
    safety = ""
    if crowd.batch.is_safety:
        safety = rng.choice(["chosen_safe_other_unsafe", "both_safe", "both_unsafe"])
    services.rating_submit(
        annotator=annotator,
        assignment_id=assignment.pk,
        chosen_response_id=chosen,
        strength=strength,
        safety_label=safety,
        seconds_spent=round(rng.uniform(*policy.seconds), 1),
        idempotency_key=f"crowd-{assignment.pk}",
    )
    crowd.ratings[annotator.pk] = crowd.ratings.get(annotator.pk, 0) + 1
