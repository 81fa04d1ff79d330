"""The one rule for text that people or files put into Preflab (pure; no Django).

Prompts, responses, rationales, names, quiz answers and every line of an imported file pass
through here, whichever door they come in by (the API's parsers, the import parsers, the pages'
forms):

- control characters are refused: C0 controls other than tab, line feed and carriage return, DEL,
  the C1 block, and unpaired surrogates. NUL cannot be stored by PostgreSQL at all; the others are
  invisible on the page, break exports and tokenizers, and are never part of honest text;
- chat-template markup (`[INST]`, `<<SYS>>`, `<|im_start|>` …) is refused where text reaches a chat
  template, unless an import explicitly allows it (a researcher importing transcripts that discuss
  the markup itself).

Each refusal says which character or tag, where, and what to do, so a person can fix it at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

# Markup of the chat formats Preflab knows. A prompt containing it could end the user's turn early
# or forge a system message once rendered (the Llama 2 reference code refuses [INST] and <<SYS>>).
CHAT_MARKUP: tuple[str, ...] = (
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<</SYS>>",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
)

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_NAMES = {0x00: "NUL", 0x1B: "ESC", 0x7F: "DEL", 0x0B: "vertical tab", 0x0C: "form feed"}


def describe_character(char: str) -> str:
    code = ord(char)
    name = _CONTROL_NAMES.get(code) or unicodedata.name(char, "")
    if 0xD800 <= code <= 0xDFFF:
        name = "an unpaired surrogate"
    return f"U+{code:04X}" + (f" ({name})" if name else "")


def control_character_problem(text: str) -> str | None:
    """What is wrong with `text`'s characters, or None. Positions count from 1, like an editor."""
    match = _FORBIDDEN.search(text)
    if match is None:
        return None
    return (
        f"contains the control character {describe_character(match.group())} at character {match.start() + 1}; "
        "remove it (only tabs and line breaks are allowed)"
    )


def find_markup(text: str, markup: tuple[str, ...] = CHAT_MARKUP) -> list[str]:
    """The chat-template tags that occur in `text`, in the order of `markup`."""
    return [tag for tag in markup if tag in text]


def markup_problem(text: str) -> str | None:
    found = find_markup(text)
    if not found:
        return None
    return f"contains {', '.join(found)}, which chat templates use as control tags; write it without them"


def text_problem(text: str, *, allow_markup: bool = True) -> str | None:
    """The first problem of one piece of text under the rule above, or None when it may be stored."""
    return control_character_problem(text) or (None if allow_markup else markup_problem(text))


def problems_in(data: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(field path, problem) for every string in a parsed JSON or form document, keys included:
    `dialogue[2].content`, `answers.q3`. Markup is not judged here: only the services know which
    strings reach a chat template."""
    if isinstance(data, str):
        problem = control_character_problem(data)
        if problem:
            yield path or "body", problem
    elif isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and (problem := control_character_problem(key)):
                yield where, f"the field name {problem}"
            yield from problems_in(value, where)
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from problems_in(value, f"{path}[{index}]")
