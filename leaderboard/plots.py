"""The leaderboard's forest plot: each item's rating with its bootstrap interval, best at the top,
people's ranking and the reward model's side by side in one picture (pure; drawn with core.svg)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core import svg

ROW_HEIGHT = 24
PEOPLE_COLOR = svg.COLORS["helpfulness"]
JUDGE_COLOR = svg.COLORS["safety"]


@dataclass(frozen=True)
class Point:
    label: str
    rating: float | None
    low: float | None
    high: float | None
    flagged: bool = False  # too few comparisons: drawn hollow


def forest(people: Sequence[Point], judge: Sequence[Point] | None = None, *, width: int = 760) -> str:
    """Ratings (Elo-like scale) with 95% intervals; ``judge`` points are matched to people's by label."""
    title = "Ratings with 95% bootstrap intervals"
    rated = [p for p in [*people, *(judge or [])] if p.rating is not None]
    if not rated:
        return svg.empty(width, 120, title, "No labelled comparison in this scope yet.")
    values = [v for p in rated for v in (p.rating, p.low, p.high) if v is not None]
    ticks = svg.nice_ticks(min(values), max(values), 6)
    left = min(300, 40 + 7 * max(len(p.label) for p in people))
    height = 70 + ROW_HEIGHT * len(people)
    frame = svg.Frame(width, height, left, 24, 40, 40, (ticks[0], ticks[-1]), (0, len(people)))
    parts = [svg.x_axis(frame, "Rating (1000 = the average item; 400 points = 10:1 odds)", ticks)]
    for tick in ticks:
        x = frame.x(tick)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" y2="{frame.top + frame.plot_height:.1f}" '
            f'stroke="{svg.COLORS["grid"]}"/>'
        )
    entries = [("people", PEOPLE_COLOR, "dot")]
    if judge is not None:
        entries.append(("reward model", JUDGE_COLOR, "dot"))
    parts.append(svg.legend(frame, entries))
    judged = {p.label: p for p in judge or []}
    for row, point in enumerate(people):
        y = frame.top + (row + 0.5) * ROW_HEIGHT
        parts.append(svg.text(frame.left - 8, y + 4, point.label, anchor="end", color=svg.COLORS["ink"]))
        offsets = [(point, PEOPLE_COLOR, -4 if judge is not None else 0)]
        if point.label in judged:
            offsets.append((judged[point.label], JUDGE_COLOR, 4))
        for shown, color, dy in offsets:
            if shown.rating is None:
                continue
            if shown.low is not None and shown.high is not None:
                parts.append(
                    f'<line x1="{frame.x(shown.low):.1f}" x2="{frame.x(shown.high):.1f}" y1="{y + dy:.1f}" '
                    f'y2="{y + dy:.1f}" stroke="{color}" stroke-width="2"/>'
                )
            fill = "#fff" if shown.flagged else color
            parts.append(
                f'<circle cx="{frame.x(shown.rating):.1f}" cy="{y + dy:.1f}" r="4.5" fill="{fill}" stroke="{color}"/>'
            )
    return svg.document(width, height, title, parts)
