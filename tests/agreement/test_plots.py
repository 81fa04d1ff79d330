"""agreement.plots: well-formed SVG with its axes, legend and escaped labels."""

import xml.etree.ElementTree as ET
from datetime import date

import pytest

from agreement.plots import Band, Bar, ScatterPoint, TrendPoint, bars_svg, nice_ticks, scatter_svg, trend_svg

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on malformed markup
    assert root.tag == f"{SVG}svg" and root.get("viewBox")
    return root


def texts(root: ET.Element) -> list[str]:
    return [t.text for t in root.iter(f"{SVG}text")]


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1]), (0, 37, [0, 10, 20, 30, 40]), (-0.2, 1, [-0.2, 0, 0.2, 0.4, 0.6, 0.8, 1])],
)
def test_nice_ticks(low, high, expected) -> None:
    assert nice_ticks(low, high, 6 if high == 1 else 5) == pytest.approx(expected)


def test_trend_has_bands_error_bars_and_an_escaped_legend() -> None:
    points = [
        TrendPoint(date(2026, 11, 2), 0.41, 0.05, "helpfulness <AC2>", "#2f5bd3", label="Week 1 & co"),
        TrendPoint(date(2026, 11, 9), 0.48, None, "helpfulness <AC2>", "#2f5bd3", highlight=True),
        TrendPoint(date(2026, 11, 9), 0.8, None, "safety", "#b54708", hollow=True, low=0.7, high=0.9),
    ]
    svg = trend_svg(points, bands=[Band(0.37, 0.55, "Llama 2 helpfulness", "#2f5bd3")], y_label="AC", title="T")
    root = parse(svg)
    labels = texts(root)
    assert "helpfulness <AC2>" in labels and "Llama 2 helpfulness" in labels and "AC" in labels
    assert "2026-11-02" in labels and "2026-11-09" in labels and "Week of the batch" in labels
    assert len(root.findall(f"{SVG}circle")) == 3 + 2  # points and legend markers
    assert len(root.findall(f"{SVG}line")) >= 2  # error bars from the SE and from the interval
    tooltips = [t.text for t in root.iter(f"{SVG}title")]
    assert any(t and t.startswith("Week 1 & co: 0.410 (95% interval 0.312 to 0.508)") for t in tooltips)


def test_bars_and_scatter() -> None:
    bars = [Bar("signif.", 30, "#2f5bd3", "30%"), Bar("neglig.", 0, "#7a5af8")]
    root = parse(bars_svg(bars, y_label="Ratings", title="Strength", groups=[("response A preferred", 0, 1)]))
    assert {"signif.", "neglig.", "30%", "response A preferred", "Ratings"} <= set(texts(root))

    points = [ScatterPoint(60, 0.9, "annotator-00001"), ScatterPoint(400, 0.5, "annotator-00002", flagged=True)]
    root = parse(scatter_svg(points, x_label="Ratings per hour", y_label="Agreement", title="Annotators"))
    labels = texts(root)
    assert "annotator-00002" in labels and "annotator-00001" not in labels  # only flagged points are named
    assert {"Ratings per hour", "Agreement", "flagged", "median"} <= set(labels)


def test_empty_plots_say_so() -> None:
    assert "Nothing computed yet." in texts(parse(trend_svg([], y_label="AC", title="T")))
    assert "No ratings yet." in texts(parse(bars_svg([Bar("x", 0, "#000")], y_label="n", title="B")))
    assert "No annotator" in texts(parse(scatter_svg([], x_label="x", y_label="y", title="S")))[0]
