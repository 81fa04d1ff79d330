"""Number formats of the agreement pages: coefficients, shares and their intervals."""

from django import template

register = template.Library()

DASH = "—"


@register.filter
def coef(value, digits: int = 3) -> str:
    """A coefficient such as 0.452 (minus sign for negative values), or a dash when missing."""
    if value is None or value == "":
        return DASH
    return f"{float(value):.{int(digits)}f}".replace("-", "−")


@register.filter
def pct(value, digits: int = 0) -> str:
    """A share as a percentage, or a dash when missing."""
    if value is None or value == "":
        return DASH
    return f"{100 * float(value):.{int(digits)}f}%"


@register.simple_tag
def share_interval(low, high) -> str:
    """A 95% interval of a share, e.g. "62–88%"."""
    if low is None or high is None:
        return ""
    return f"{100 * low:.0f}–{100 * high:.0f}%"


@register.filter
def get_item(mapping: dict, key: str):
    """mapping[key], or the key itself when it is missing (a flag code without a description)."""
    return mapping.get(key, key)
