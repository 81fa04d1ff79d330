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

COLORS = {
    "helpfulness": "#2f5bd3",
    "safety": "#b54708",
    "ink": "#1d2330",
    "muted": "#667085",
    "grid": "#e3e6ec",
    "flag": "#b42318",
    "point": "#2f5bd3",
}
FONT = 'font-family="DejaVu Sans, system-ui, sans-serif"'


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


@dataclass(frozen=True)
class _Frame:
    """The plot area inside the margins, and the data-to-pixel scales."""

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    x_domain: tuple[float, float]
    y_domain: tuple[float, float]

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    def x(self, value: float) -> float:
        lo, hi = self.x_domain
        return self.left + (value - lo) / (hi - lo) * self.plot_width

    def y(self, value: float) -> float:
        lo, hi = self.y_domain
        return self.top + (hi - value) / (hi - lo) * self.plot_height


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) from at or below ``low`` to
    at or above ``high``, about ``count`` steps."""
    if not math.isfinite(low) or not math.isfinite(high):
        raise ValueError("Tick bounds must be finite.")
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if (high - low) / (m * magnitude) <= count)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


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
        return _empty(width, 160, title, "Nothing computed yet.")
    days = [p.when.toordinal() for p in points]
    first, last = min(days), max(days)
    pad = max(3.5, (last - first) * 0.06)
    lows = [(p.interval or (p.value, p.value))[0] for p in points] + [b.low for b in bands]
    highs = [(p.interval or (p.value, p.value))[1] for p in points] + [b.high for b in bands]
    y_low = max(-1.0, min(0.0, math.floor(min(lows) * 5) / 5))
    y_high = min(1.0, max(1.0, math.ceil(max(highs) * 5) / 5))
    frame = _Frame(width, height, 58, 18, 44, 48, (first - pad, last + pad), (y_low, y_high))
    parts = [_y_axis(frame, y_label, nice_ticks(y_low, y_high, 6))]
    for band in bands:
        top, bottom = frame.y(band.high), frame.y(band.low)
        parts.append(
            f'<rect x="{frame.left}" y="{top:.1f}" width="{frame.plot_width:.1f}" height="{bottom - top:.1f}" '
            f'fill="{band.color}" fill-opacity="0.12"><title>{escape(band.label)}</title></rect>'
        )
        # Named inside the band, at the right, where the newest batches are least likely to sit.
        parts.append(
            _text(frame.left + frame.plot_width - 6, top + 14, band.label, size=11, anchor="end", color=band.color)
        )
    parts.append(_date_axis(frame, sorted(set(days))))
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
    parts.append(_legend(frame, [(label, color, "dot-hollow" if hollow else "dot") for label, color, hollow in series]))
    return _svg(width, height, title, parts)


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
        return _empty(width, 160, title, "No ratings yet.")
    top_value = max(bar.value for bar in bars)
    ticks = nice_ticks(0, top_value, 5)
    frame = _Frame(width, height, 58, 18, 22, 62 if groups else 40, (0, len(bars)), (0, ticks[-1]))
    parts = [_y_axis(frame, y_label, ticks)]
    slot = frame.plot_width / len(bars)
    for i, bar in enumerate(bars):
        x = frame.left + i * slot + slot * 0.15
        y = frame.y(bar.value)
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{frame.y(0) - y:.1f}" rx="2" '
            f'fill="{bar.color}"><title>{escape(bar.label)}: {escape(_number(bar.value))}</title></rect>'
        )
        centre = frame.left + (i + 0.5) * slot
        if bar.note:
            parts.append(_text(centre, y - 5, bar.note, size=11, anchor="middle", color=COLORS["ink"]))
        parts.append(_text(centre, frame.y(0) + 16, bar.label, size=11, anchor="middle"))
    for label, start, end in groups:
        x1, x2 = frame.left + start * slot + 6, frame.left + (end + 1) * slot - 6
        baseline = frame.y(0) + 30
        parts.append(f'<path d="M{x1:.1f},{baseline:.1f} v4 H{x2:.1f} v-4" fill="none" stroke="{COLORS["muted"]}"/>')
        parts.append(_text((x1 + x2) / 2, baseline + 19, label, size=12, anchor="middle", color=COLORS["ink"]))
    return _svg(width, height, title, parts)


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
        return _empty(width, 160, title, "No annotator has enough ratings yet.")
    xs = [p.x for p in points]
    x_ticks = nice_ticks(0, max(xs) * 1.05 if max(xs) > 0 else 1, 6)
    frame = _Frame(width, height, 58, 18, 40, 48, (0, x_ticks[-1]), y_domain)
    y_ticks = nice_ticks(*y_domain, 5)
    parts = [_y_axis(frame, y_label, y_ticks), _x_axis(frame, x_label, x_ticks)]
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
            parts.append(_text(cx + dx, cy + 4, point.label, size=11, anchor=anchor, color=COLORS["flag"]))
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
    parts.append(_legend(frame, legend))
    return _svg(width, height, title, parts)


def _svg(width: int, height: int, title: str, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="plot" {FONT} font-size="12">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


def _empty(width: int, height: int, title: str, message: str) -> str:
    return _svg(width, height, title, [_text(width / 2, height / 2, message, size=14, anchor="middle")])


def _text(x: float, y: float, text: str, *, size: int = 12, anchor: str = "start", color: str | None = None) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{color or COLORS["muted"]}">{escape(text)}</text>'
    )


def _y_axis(frame: _Frame, label: str, ticks: Sequence[float]) -> str:
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.left + frame.plot_width:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{COLORS["grid"]}"/>'
        )
        parts.append(_text(frame.left - 8, y + 4, _number(tick), size=11, anchor="end"))
    middle = frame.top + frame.plot_height / 2
    parts.append(
        f'<text transform="translate(16 {middle:.1f}) rotate(-90)" text-anchor="middle" font-size="12" '
        f'fill="{COLORS["ink"]}">{escape(label)}</text>'
    )
    return "".join(parts)


def _x_axis(frame: _Frame, label: str, ticks: Sequence[float]) -> str:
    base = frame.y(frame.y_domain[0])
    parts = [
        f'<line x1="{frame.left}" x2="{frame.left + frame.plot_width:.1f}" y1="{base:.1f}" y2="{base:.1f}" '
        f'stroke="{COLORS["muted"]}"/>'
    ]
    for tick in ticks:
        parts.append(_text(frame.x(tick), base + 16, _number(tick), size=11, anchor="middle"))
    parts.append(
        _text(frame.left + frame.plot_width / 2, frame.height - 8, label, size=12, anchor="middle", color=COLORS["ink"])
    )
    return "".join(parts)


def _date_axis(frame: _Frame, days: Sequence[int]) -> str:
    base = frame.y(frame.y_domain[0])
    parts = [
        f'<line x1="{frame.left}" x2="{frame.left + frame.plot_width:.1f}" y1="{base:.1f}" y2="{base:.1f}" '
        f'stroke="{COLORS["muted"]}"/>'
    ]
    if len(days) > 8:  # at most 8 labels, spread over the range
        first, last = days[0], days[-1]
        days = sorted({round(first + i * (last - first) / 7) for i in range(8)})
    for day in days:
        x = frame.x(day)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base:.1f}" y2="{base + 4:.1f}" stroke="{COLORS["muted"]}"/>'
        )
        parts.append(_text(x, base + 17, date.fromordinal(day).isoformat(), size=11, anchor="middle"))
    parts.append(
        _text(
            frame.left + frame.plot_width / 2,
            frame.height - 8,
            "Week of the batch",
            anchor="middle",
            color=COLORS["ink"],
        )
    )
    return "".join(parts)


def _legend(frame: _Frame, entries: Sequence[tuple[str, str, str]]) -> str:
    """One row of legend entries above the plot area; kinds: dot, dot-hollow, band, dash."""
    parts, x, y = [], float(frame.left), frame.top - 22
    for label, color, kind in entries:
        if kind == "band":
            parts.append(
                f'<rect x="{x:.1f}" y="{y - 6:.1f}" width="16" height="12" fill="{color}" fill-opacity="0.2"/>'
            )
        elif kind == "dash":
            parts.append(
                f'<line x1="{x:.1f}" x2="{x + 16:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{color}" '
                f'stroke-dasharray="4 3"/>'
            )
        else:
            fill = "#fff" if kind == "dot-hollow" else color
            parts.append(f'<circle cx="{x + 8:.1f}" cy="{y:.1f}" r="4.5" fill="{fill}" stroke="{color}"/>')
        parts.append(_text(x + 22, y + 4, label, size=12, color=COLORS["ink"]))
        x += 22 + 7.2 * len(label) + 18
    return "".join(parts)


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
