"""SVG plots of reward-model training (pure Python, no Django): the training curves and the reward
distributions of chosen and rejected responses. Built on the axes, frame and legend of
`core.svg`, so every plot in Preflab looks alike; each one has a CSV beside it on the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from core import svg
from core.svg import COLORS, nice_ticks

CHOSEN = COLORS["helpfulness"]
REJECTED = COLORS["safety"]


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: Sequence[tuple[float, float]]  # (step, value)
    width: float = 1.6
    opacity: float = 1.0
    dashed: bool = False


def smooth(values: Sequence[float], weight: float = 0.8) -> list[float]:
    """An exponential moving average with bias correction (TensorBoard's smoothing), for noisy per-step
    values: the raw points stay drawn faintly behind it."""
    smoothed, average = [], 0.0
    for i, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        smoothed.append(average / (1 - weight**i))
    return smoothed


def curve_svg(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str,
    x_label: str = "Optimizer step",
    total_steps: int | None = None,
    y_domain: tuple[float, float] | None = None,
    reference: tuple[float, str] | None = None,
    width: int = 520,
    height: int = 240,
    empty: str = "Waiting for the first step.",
) -> str:
    """Lines over optimizer steps. The x axis runs to ``total_steps`` so a live run fills it from the
    left; ``reference`` draws a dashed horizontal line (e.g. chance accuracy)."""
    points = [p for s in series for p in s.points if math.isfinite(p[1])]
    if not points:
        return svg.empty(width, 140, title, empty)
    x_high = max(total_steps or 0, max(x for x, _ in points), 1)
    if y_domain is None:
        low, high = min(y for _, y in points), max(y for _, y in points)
        ticks = nice_ticks(min(low, 0.0), high if high > low else low + 1, 4)
        y_domain = (ticks[0], ticks[-1])
    else:
        ticks = nice_ticks(*y_domain, 4)
    x_ticks = [t for t in nice_ticks(0, x_high, 6) if t <= x_high] or [0, x_high]
    frame = svg.Frame(width, height, 58, 14, 34, 44, (0, x_high), y_domain)
    parts = [svg.y_axis(frame, y_label, ticks), svg.x_axis(frame, x_label, x_ticks)]
    if reference is not None:
        value, label = reference
        y = frame.y(value)
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.left + frame.plot_width:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{COLORS["muted"]}" stroke-dasharray="4 4"><title>{escape(label)}</title></line>'
        )
        parts.append(svg.text(frame.left + frame.plot_width - 4, y - 5, label, size=10, anchor="end"))
    low, high = y_domain
    for s in series:
        coords = [(frame.x(x), frame.y(min(max(y, low), high))) for x, y in s.points if math.isfinite(y)]
        if not coords:
            continue
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        if len(coords) == 1:
            cx, cy = coords[0]
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{s.color}" fill-opacity="{s.opacity}"/>')
            continue
        path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(coords))
        parts.append(
            f'<path d="{path}" fill="none" stroke="{s.color}" stroke-width="{s.width}" '
            f'stroke-opacity="{s.opacity}" stroke-linejoin="round"{dash}><title>{escape(s.label)}</title></path>'
        )
    legend = [(s.label, s.color, "dash" if s.dashed else "dot") for s in series if s.opacity >= 0.5]
    parts.append(svg.legend(frame, legend))
    return svg.document(width, height, title, parts)


def training_curves(rows: Sequence[dict], total_steps: int | None) -> dict[str, str]:
    """The live run page's three plots from `selectors.run_curves` rows: loss, accuracy and
    learning rate per optimizer step (loss and accuracy raw, faint, with a smoothed line over them)."""
    steps = [row["step"] for row in rows]
    loss = [row["loss"] for row in rows]
    accuracy = [row["accuracy"] for row in rows]
    lr = [row["learning_rate"] for row in rows]
    blue = COLORS["helpfulness"]
    return {
        "loss": curve_svg(
            [
                Series("per step", blue, list(zip(steps, loss, strict=True)), width=1, opacity=0.35),
                Series("smoothed (faint: per step)", blue, list(zip(steps, smooth(loss), strict=True)), width=2),
            ],
            title="Training loss",
            y_label="Ranking loss",
            total_steps=total_steps,
        ),
        "accuracy": curve_svg(
            [
                Series("per step", COLORS["safety"], list(zip(steps, accuracy, strict=True)), 1, 0.35),
                Series(
                    "smoothed (faint: per step)", COLORS["safety"], list(zip(steps, smooth(accuracy), strict=True)), 2
                ),
            ],
            title="Training accuracy",
            y_label="Pairs ranked right",
            total_steps=total_steps,
            y_domain=(0.0, 1.0),
            reference=(0.5, "chance"),
        ),
        "lr": _lr_svg(steps, lr, total_steps),
    }


def _lr_svg(steps: Sequence[int], lr: Sequence[float], total_steps: int | None) -> str:
    """The schedule, in units of a power of ten so the axis reads 0.2, 0.4, ... rather than 0.00002."""
    scale = 10 ** math.floor(math.log10(max(lr))) if lr and max(lr) > 0 else 1.0
    return curve_svg(
        [Series("learning rate", COLORS["ink"], [(s, v / scale) for s, v in zip(steps, lr, strict=True)])],
        title="Learning rate",
        y_label=f"Learning rate (× {scale:.0e})" if scale != 1 else "Learning rate",
        total_steps=total_steps,
        y_domain=(0.0, max(lr) / scale * 1.1) if lr else None,
    )


def distribution_svg(distribution: dict, *, title: str = "Rewards of chosen and rejected responses") -> str:
    """The two reward histograms on their shared bins, as outlined steps over each other."""
    edges = distribution.get("edges") or []
    chosen = (distribution.get("chosen") or {}).get("counts") or []
    rejected = (distribution.get("rejected") or {}).get("counts") or []
    width, height = 760, 280
    if len(edges) < 2 or not (sum(chosen) or sum(rejected)):
        return svg.empty(width, 140, title, "No held-out pairs were scored.")
    top = max([*chosen, *rejected, 1])
    y_ticks = nice_ticks(0, top, 4)
    x_ticks = [t for t in nice_ticks(edges[0], edges[-1], 7) if edges[0] <= t <= edges[-1]]
    frame = svg.Frame(width, height, 58, 14, 34, 44, (edges[0], edges[-1]), (0, y_ticks[-1]))
    parts = [svg.y_axis(frame, "Responses", y_ticks), svg.x_axis(frame, "Reward (raw score)", x_ticks)]
    for counts, color, label in ((rejected, REJECTED, "rejected"), (chosen, CHOSEN, "chosen")):
        if not counts:
            continue
        for i, count in enumerate(counts):
            if not count:
                continue
            x1, x2, y = frame.x(edges[i]), frame.x(edges[i + 1]), frame.y(count)
            parts.append(
                f'<rect x="{x1:.1f}" y="{y:.1f}" width="{max(0.5, x2 - x1 - 1):.1f}" height="{frame.y(0) - y:.1f}" '
                f'fill="{color}" fill-opacity="0.35" stroke="{color}">'
                f"<title>{label}: {count} with reward {edges[i]:.2f} to {edges[i + 1]:.2f}</title></rect>"
            )
    for summary, color, label in (
        (distribution.get("chosen"), CHOSEN, "chosen mean"),
        (distribution.get("rejected"), REJECTED, "rejected mean"),
    ):
        if summary and summary.get("n"):
            x = frame.x(summary["mean"])
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top}" y2="{frame.y(0):.1f}" stroke="{color}" '
                f'stroke-width="2" stroke-dasharray="5 3"><title>{label} {summary["mean"]:.3f}</title></line>'
            )
    parts.append(
        svg.legend(
            frame, [("chosen", CHOSEN, "dot"), ("rejected", REJECTED, "dot"), ("means", COLORS["muted"], "dash")]
        )
    )
    return svg.document(width, height, title, parts)
