"""Number formats of the reward-model pages (rewardmodel.js writes the same on the live page)."""

from django import template

register = template.Library()

DASH = "—"


@register.filter
def duration(seconds) -> str:
    """Seconds as 45 s, 3 min 05 s or 2 h 04 min; a dash when unknown."""
    if seconds is None or seconds == "":
        return DASH
    total = round(float(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def sci(value) -> str:
    """A learning rate such as 1.0e-05."""
    if value is None or value == "":
        return DASH
    return f"{float(value):.1e}"


@register.filter
def fixed(value, digits: int = 3) -> str:
    if value is None or value == "":
        return DASH
    return f"{float(value):.{int(digits)}f}".replace("-", "−")


@register.filter
def thousands(value) -> str:
    if value is None or value == "":
        return DASH
    return f"{round(float(value)):,}"


@register.filter
def percent(value, digits: int = 1) -> str:
    """An accuracy as Llama 2's tables print it: 63.2%."""
    if value is None or value == "":
        return DASH
    return f"{100 * float(value):.{int(digits)}f}%"
