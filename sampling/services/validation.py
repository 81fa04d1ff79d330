"""Rules several sampling writes share: the chat markup nobody may write, the longest generation a
variant or policy may ask for, and the check every prompt passes before it is stored.
"""

from __future__ import annotations

from django.conf import settings

from config.exceptions import InvalidInput
from core.text import CHAT_MARKUP, control_character_problem

from ..templates import find_control_tags

# Markup of the chat formats Preflab knows, refused in anything an annotator writes (core/text.py,
# the rule imports follow too). Each model's own special tokens are checked again when its prompt is
# rendered.
FORBIDDEN_MARKUP = CHAT_MARKUP
MAX_NEW_TOKENS_LIMIT = 8192


def prompt_text_validate(text: str, *, field: str = "prompt") -> str:
    """The prompt as stored (trimmed), or a refusal that says what to change."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput("Write a prompt first: it is empty.", field=field)
    limit = settings.PREFLAB_MAX_PROMPT_CHARS
    if len(text) > limit:
        raise InvalidInput(
            f"The prompt is {len(text):,} characters long; the limit is {limit:,}. Shorten it by "
            f"{len(text) - limit:,} characters.",
            field=field,
        )
    if problem := control_character_problem(text):
        raise InvalidInput(f"The prompt {problem}.", field=field)
    if found := find_control_tags(text, FORBIDDEN_MARKUP):
        raise InvalidInput(
            f"The prompt contains {', '.join(found)}, which chat templates use as control tags (the Llama 2 "
            "reference code refuses them too). Write it without them.",
            field=field,
            extra={"tags": found},
        )
    return text
