"""Simulated annotators of known reliability as a RatingTable, without the database.

Each comparison has a hidden better response (A or B). A "good" annotator picks it with their
accuracy, a "spammer" flips a coin, a "contrarian" picks the worse one with their accuracy's
complement, and a "left" annotator always picks the response shown on the left (sides are drawn
at random per rating, as the lease does). Gold items, when asked for, are extra comparisons every
annotator rates as a check after they were marked gold.
"""

from dataclasses import dataclass

import numpy as np

from agreement.reliability import RatingTable

STRENGTHS = ["significantly_better", "better", "slightly_better", "negligibly_better"]


@dataclass(frozen=True)
class Annotator:
    kind: str  # "good", "spammer", "contrarian" or "left"
    accuracy: float = 0.9


def simulate(
    annotators: list[Annotator], *, comparisons: int, raters: int = 3, gold: int = 0, seed: int = 0
) -> tuple[RatingTable, np.ndarray]:
    """Ratings of `comparisons` pairs by `raters` annotators each (drawn at random), plus `gold` gold
    checks per annotator. Returns the table and the truth (True where A is better) per comparison id."""
    rng = np.random.default_rng(seed)
    truth_a = rng.random(comparisons + gold) < 0.5
    names = ("comparison", "annotator", "chosen", "strength", "shown_left", "gold_check", "gold_choice")
    columns: dict[str, list] = {name: [] for name in names}

    def rate(comparison: int, annotator: int, gold_check: bool) -> None:
        kind, accuracy = annotators[annotator].kind, annotators[annotator].accuracy
        left = "a" if rng.random() < 0.5 else "b"
        if kind == "left":
            chosen_a = left == "a"
        elif kind == "spammer":
            chosen_a = rng.random() < 0.5
        else:
            right = rng.random() < accuracy
            chosen_a = bool(truth_a[comparison] == right) if kind == "good" else bool(truth_a[comparison] != right)
        columns["comparison"].append(comparison)
        columns["annotator"].append(annotator)
        columns["chosen"].append("a" if chosen_a else "b")
        columns["strength"].append(STRENGTHS[rng.integers(4)])
        columns["shown_left"].append(left)
        columns["gold_check"].append(gold_check)
        columns["gold_choice"].append(("a" if truth_a[comparison] else "b") if gold_check else "")

    for comparison in range(comparisons):
        for annotator in rng.choice(len(annotators), raters, replace=False):
            rate(comparison, int(annotator), False)
    for annotator in range(len(annotators)):
        for comparison in range(comparisons, comparisons + gold):
            rate(comparison, annotator, True)
    n = len(columns["comparison"])
    table = RatingTable.from_columns(
        **columns,
        repeat_of=[None] * n,
        vendor=[None] * n,
        safety_label=[""] * n,
        seconds=[None] * n,
    )
    return table, truth_a
