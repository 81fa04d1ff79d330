"""Small hand-written SVG plots for the agreement dashboards (pure Python, no Django).

Three shapes, each returned as one ``<svg>`` string that scales to its container (``viewBox``) and
carries its own axis labels and legend: agreement over time with reference bands
(:func:`trend_svg`), a bar chart (:func:`bars_svg`) and a scatter with flagged points
(:func:`scatter_svg`). Every text that comes from data is escaped. Colours follow
frontend/static/frontend/preflab.css.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from core import svg
from core.svg import COLORS, nice_ticks

__all__ = [
    "COLORS",
    "Band",
    "Bar",
    "ScatterPoint",
    "TrendPoint",
    "bars_svg",
    "nice_ticks",
    "scatter_svg",
    "trend_svg",
]


@dataclass(frozen=True)
class Band:
    """A shaded reference range of y, e.g. Llama 2's AC2 for helpfulness."""

    low: float
    high: float
    label: str
    color: str


@dataclass(frozen=True)
class TrendPoint:
    """A value at a date with its 95% interval: ``low``/``high`` when given (e.g. Wilson), else
    value +- 1.96 ``standard_error``, else none."""

    when: date
    value: float
    standard_error: float | None
    series: str  # legend entry
    color: str
    label: str = ""  # tooltip, e.g. the batch name
    hollow: bool = False
    highlight: bool = False
    low: float | None = None
    high: float | None = None

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.low is not None and self.high is not None:
            return self.low, self.high
        if self.standard_error is not None:
            return self.value - 1.96 * self.standard_error, self.value + 1.96 * self.standard_error
        return None


@dataclass(frozen=True)
class Bar:
    label: str  # tick label under the bar
    value: float
    color: str
    note: str = ""  # shown above the bar


@dataclass(frozen=True)
class ScatterPoint:
    x: float
    y: float
    label: str
    flagged: bool = False
    note: str = ""  # tooltip


def trend_svg(
    points: Sequence[TrendPoint],
    *,
    bands: Sequence[Band] = (),
    y_label: str,
    title: str,
    width: int = 760,
    height: int = 320,
) -> str:
    """Values over time with 95% error bars and shaded reference bands."""
    if not points:
        return svg.empty(width, 160, title, "Nothing computed yet.")
    days = [p.when.toordinal() for p in points]
    first, last = min(days), max(days)
    pad = max(3.5, (last - first) * 0.06)
    lows = [(p.interval or (p.value, p.value))[0] for p in points] + [b.low for b in bands]
    highs = [(p.interval or (p.value, p.value))[1] for p in points] + [b.high for b in bands]
    y_low = max(-1.0, min(0.0, math.floor(min(lows) * 5) / 5))
    y_high = min(1.0, max(1.0, math.ceil(max(highs) * 5) / 5))
    frame = svg.Frame(width, height, 58, 18, 44, 48, (first - pad, last + pad), (y_low, y_high))
    parts = [svg.y_axis(frame, y_label, nice_ticks(y_low, y_high, 6))]
    for band in bands:
        top, bottom = frame.y(band.high), frame.y(band.low)
        parts.append(
            f'<rect x="{frame.left}" y="{top:.1f}" width="{frame.plot_width:.1f}" height="{bottom - top:.1f}" '
            f'fill="{band.color}" fill-opacity="0.12"><title>{escape(band.label)}</title></rect>'
        )
        # Named inside the band, at the right, where the newest batches are least likely to sit.
        parts.append(
            svg.text(frame.left + frame.plot_width - 6, top + 14, band.label, size=11, anchor="end", color=band.color)
        )
    parts.append(svg.date_axis(frame, sorted(set(days))))
    series = list(dict.fromkeys((p.series, p.color, p.hollow) for p in points))
    offsets = {s: (i - (len(series) - 1) / 2) * 6 for i, s in enumerate(series)}
    for point in sorted(points, key=lambda p: p.highlight):
        key = (point.series, point.color, point.hollow)
        cx, cy = frame.x(point.when.toordinal()) + offsets[key], frame.y(point.value)
        tooltip = f"{point.label}: {point.value:.3f}"
        if point.interval is not None:
            low, high = point.interval
            tooltip += f" (95% interval {low:.3f} to {high:.3f})"
            y1, y2 = frame.y(max(y_low, low)), frame.y(min(y_high, high))
            parts.append(
                f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" stroke="{point.color}" '
                f'stroke-width="1.5"/>'
            )
        fill = "#fff" if point.hollow else point.color
        radius = 6 if point.highlight else 4.5
        ring = f' stroke="{COLORS["ink"]}" stroke-width="2"' if point.highlight else f' stroke="{point.color}"'
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{radius}" fill="{fill}"{ring} stroke-opacity="1">'
            f"<title>{escape(tooltip)}</title></circle>"
        )
    parts.append(
        svg.legend(frame, [(label, color, "dot-hollow" if hollow else "dot") for label, color, hollow in series])
    )
    return svg.document(width, height, title, parts)


def bars_svg(
    bars: Sequence[Bar],
    *,
    y_label: str,
    title: str,
    groups: Sequence[tuple[str, int, int]] = (),
    width: int = 760,
    height: int = 280,
) -> str:
    """Vertical bars; ``groups`` (label, first bar, last bar) are labelled under their tick labels."""
    if not bars or not any(bar.value for bar in bars):
        return svg.empty(width, 160, title, "No ratings yet.")
    top_value = max(bar.value for bar in bars)
    ticks = nice_ticks(0, top_value, 5)
    frame = svg.Frame(width, height, 58, 18, 22, 62 if groups else 40, (0, len(bars)), (0, ticks[-1]))
    parts = [svg.y_axis(frame, y_label, ticks)]
    slot = frame.plot_width / len(bars)
    for i, bar in enumerate(bars):
        x = frame.left + i * slot + slot * 0.15
        y = frame.y(bar.value)
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{frame.y(0) - y:.1f}" rx="2" '
            f'fill="{bar.color}"><title>{escape(bar.label)}: {escape(svg.number(bar.value))}</title></rect>'
        )
        centre = frame.left + (i + 0.5) * slot
        if bar.note:
            parts.append(svg.text(centre, y - 5, bar.note, size=11, anchor="middle", color=COLORS["ink"]))
        parts.append(svg.text(centre, frame.y(0) + 16, bar.label, size=11, anchor="middle"))
    for label, start, end in groups:
        x1, x2 = frame.left + start * slot + 6, frame.left + (end + 1) * slot - 6
        baseline = frame.y(0) + 30
        parts.append(f'<path d="M{x1:.1f},{baseline:.1f} v4 H{x2:.1f} v-4" fill="none" stroke="{COLORS["muted"]}"/>')
        parts.append(svg.text((x1 + x2) / 2, baseline + 19, label, size=12, anchor="middle", color=COLORS["ink"]))
    return svg.document(width, height, title, parts)


def scatter_svg(
    points: Sequence[ScatterPoint],
    *,
    x_label: str,
    y_label: str,
    title: str,
    y_domain: tuple[float, float] = (0.0, 1.0),
    width: int = 760,
    height: int = 340,
) -> str:
    """One point per item; flagged points are red and named. Dashed lines mark the medians."""
    if not points:
        return svg.empty(width, 160, title, "No annotator has enough ratings yet.")
    xs = [p.x for p in points]
    x_ticks = nice_ticks(0, max(xs) * 1.05 if max(xs) > 0 else 1, 6)
    frame = svg.Frame(width, height, 58, 18, 40, 48, (0, x_ticks[-1]), y_domain)
    y_ticks = nice_ticks(*y_domain, 5)
    parts = [svg.y_axis(frame, y_label, y_ticks), svg.x_axis(frame, x_label, x_ticks)]
    median_x, median_y = _median(xs), _median([p.y for p in points])
    parts.append(
        f'<line x1="{frame.x(median_x):.1f}" x2="{frame.x(median_x):.1f}" y1="{frame.top}" '
        f'y2="{frame.y(y_domain[0]):.1f}" stroke="{COLORS["muted"]}" stroke-dasharray="4 4"/>'
    )
    parts.append(
        f'<line x1="{frame.left}" x2="{frame.left + frame.plot_width:.1f}" y1="{frame.y(median_y):.1f}" '
        f'y2="{frame.y(median_y):.1f}" stroke="{COLORS["muted"]}" stroke-dasharray="4 4"/>'
    )
    for point in sorted(points, key=lambda p: p.flagged):
        cx, cy = frame.x(point.x), frame.y(min(max(point.y, y_domain[0]), y_domain[1]))
        tooltip = f"{point.label}: {y_label.lower()} {point.y:.2f}, {x_label.lower()} {point.x:.0f}"
        if point.note:
            tooltip += f" ({point.note})"
        if point.flagged:
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="{COLORS["flag"]}" stroke="#fff" stroke-width="1.5">'
                f"<title>{escape(tooltip)}</title></circle>"
            )
            anchor, dx = ("end", -9) if cx > frame.left + frame.plot_width * 0.75 else ("start", 9)
            parts.append(svg.text(cx + dx, cy + 4, point.label, size=11, anchor=anchor, color=COLORS["flag"]))
        else:
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" fill="{COLORS["point"]}" fill-opacity="0.7">'
                f"<title>{escape(tooltip)}</title></circle>"
            )
    legend = [
        ("annotator", COLORS["point"], "dot"),
        ("flagged", COLORS["flag"], "dot"),
        ("median", COLORS["muted"], "dash"),
    ]
    parts.append(svg.legend(frame, legend))
    return svg.document(width, height, title, parts)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
