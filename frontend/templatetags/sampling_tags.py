"""Template tags of sampling: the prompt length limit, and a batch's pair policy in one line."""

from django import template
from django.conf import settings

from sampling.draws import PolicyError, TemperatureSpec
from sampling.selectors import policy_for

register = template.Library()


@register.simple_tag
def max_prompt_chars() -> int:
    return settings.PREFLAB_MAX_PROMPT_CHARS


@register.filter
def temperatures_text(policy) -> str:
    """{0.6, 0.8, 1} for a set, 0.5–1.2 for a range."""
    try:
        return TemperatureSpec.parse(policy.temperature_mode, policy.temperatures).describe()
    except PolicyError:
        return str(policy.temperatures)


@register.inclusion_tag("frontend/sampling/_policy_summary.html")
def pair_policy_summary(batch) -> dict:
    """The batch's pair policy as researchers see it on the batch page, with a link to change it."""
    return {"batch": batch, "policy": policy_for(batch)}


@register.filter
def get_item(mapping: dict, key):
    return mapping.get(key)


@register.filter
def job_seconds(job) -> str:
    """How long a finished job took from its (last) start, e.g. 3.4."""
    return f"{(job.finished_at - job.started_at).total_seconds():.1f}"


@register.filter
def user_turn(context_length: int) -> int:
    """Which user turn of its dialogue a pair answers: 1 for a new prompt, 2 after one exchange..."""
    return (int(context_length) + 1) // 2
