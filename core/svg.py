"""SVG primitives every Preflab plot is drawn with (pure Python, no Django): colours, the plot frame
and its scales, round ticks, axes, a legend, and the <svg> document. Every text drawn is escaped.
Colours follow frontend/static/frontend/preflab.css. The charts themselves live beside the data they
show: agreement.plots (agreement) and rewardmodel.plots (training)."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

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
class Frame:
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


def document(width: int, height: int, title: str, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="plot" {FONT} font-size="12">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


def empty(width: int, height: int, title: str, message: str) -> str:
    return document(width, height, title, [text(width / 2, height / 2, message, size=14, anchor="middle")])


def text(x: float, y: float, text: str, *, size: int = 12, anchor: str = "start", color: str | None = None) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{color or COLORS["muted"]}">{escape(text)}</text>'
    )


def y_axis(frame: Frame, label: str, ticks: Sequence[float]) -> str:
    parts = []
    for tick in ticks:
        y = frame.y(tick)
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.left + frame.plot_width:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{COLORS["grid"]}"/>'
        )
        parts.append(text(frame.left - 8, y + 4, number(tick), size=11, anchor="end"))
    middle = frame.top + frame.plot_height / 2
    parts.append(
        f'<text transform="translate(16 {middle:.1f}) rotate(-90)" text-anchor="middle" font-size="12" '
        f'fill="{COLORS["ink"]}">{escape(label)}</text>'
    )
    return "".join(parts)


def x_axis(frame: Frame, label: str, ticks: Sequence[float]) -> str:
    base = frame.y(frame.y_domain[0])
    parts = [
        f'<line x1="{frame.left}" x2="{frame.left + frame.plot_width:.1f}" y1="{base:.1f}" y2="{base:.1f}" '
        f'stroke="{COLORS["muted"]}"/>'
    ]
    for tick in ticks:
        parts.append(text(frame.x(tick), base + 16, number(tick), size=11, anchor="middle"))
    parts.append(
        text(frame.left + frame.plot_width / 2, frame.height - 8, label, size=12, anchor="middle", color=COLORS["ink"])
    )
    return "".join(parts)


def date_axis(frame: Frame, days: Sequence[int]) -> str:
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
        parts.append(text(x, base + 17, date.fromordinal(day).isoformat(), size=11, anchor="middle"))
    parts.append(
        text(
            frame.left + frame.plot_width / 2,
            frame.height - 8,
            "Week of the batch",
            anchor="middle",
            color=COLORS["ink"],
        )
    )
    return "".join(parts)


def legend(frame: Frame, entries: Sequence[tuple[str, str, str]]) -> str:
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
        parts.append(text(x + 22, y + 4, label, size=12, color=COLORS["ink"]))
        x += 22 + 7.2 * len(label) + 18
    return "".join(parts)


def number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.2f}".rstrip("0").rstrip(".")
