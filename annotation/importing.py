"""Parsing and validation of JSONL imports (pure; no Django).

The whole file is read and checked before anything is written; every error names the line and
the field so the researcher can fix the file in one pass.

Prompt lines:      {"text": "...", "tags": ["..."]}
Comparison lines:  {"prompt": "..."} or {"dialogue": [{"role": "user", "content": "..."}, ...]} (a
                   {"role": "system"} message may come first),
                   plus "responses": [{"text", "variant", "temperature", "top_p"?, "max_new_tokens"?}] x 2

Every string follows the text rule (core/text.py): control characters are refused, and chat-template
markup is refused in prompts, turns and responses unless the import allows it (`allow_markup`).
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from core.text import text_problem

MAX_ERRORS = 50
MAX_TEXT = 100_000


@dataclass(frozen=True)
class ImportedResponse:
    text: str
    variant: str
    temperature: float
    top_p: float | None = None
    max_new_tokens: int | None = None


@dataclass(frozen=True)
class ImportedComparison:
    line: int
    dialogue: list[dict]
    responses: tuple[ImportedResponse, ImportedResponse]
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportedPrompt:
    line: int
    text: str
    tags: list[str] = field(default_factory=list)


class ImportFileError(ValueError):
    """The file does not validate. `errors` lists "line N, field F: what is wrong"."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        shown = errors[:MAX_ERRORS]
        more = f" (and {len(errors) - len(shown)} more)" if len(errors) > len(shown) else ""
        super().__init__(f"The file was not imported; fix these {len(errors)} problem(s){more}: " + "; ".join(shown))


def _lines(source: Iterable[str | bytes]) -> Iterable[tuple[int, dict | None, str | None]]:
    for number, raw in enumerate(source, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, None, f"line {number}: not valid UTF-8"
                continue
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield number, None, f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        if not isinstance(obj, dict):
            yield number, None, f"line {number}: expected a JSON object, got {type(obj).__name__}"
            continue
        yield number, obj, None


def _text(
    obj: dict, key: str, where: str, errors: list[str], max_len: int = MAX_TEXT, allow_markup: bool = True
) -> str | None:
    """The field's text, trimmed; or None with the error recorded. `allow_markup=False` for text that
    reaches a chat template."""
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        errors.append(f"{where}, field {key}: must be a non-empty string")
        return None
    if len(value) > max_len:
        errors.append(f"{where}, field {key}: longer than {max_len} characters")
        return None
    if problem := text_problem(value, allow_markup=allow_markup):
        hint = " (or allow chat markup for this import)" if "control tags" in problem else ""
        errors.append(f"{where}, field {key}: {problem}{hint}")
        return None
    return value.strip()


def _tags(obj: dict, where: str, errors: list[str]) -> list[str]:
    tags = obj.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errors.append(f"{where}, field tags: must be a list of strings")
        return []
    for i, tag in enumerate(tags):
        if problem := text_problem(tag):
            errors.append(f"{where}, field tags[{i}]: {problem}")
            return []
    return tags


def parse_prompts(source: Iterable[str | bytes], *, allow_markup: bool = False) -> list[ImportedPrompt]:
    prompts, errors = [], []
    for number, obj, problem in _lines(source):
        if problem:
            errors.append(problem)
            continue
        where = f"line {number}"
        text = _text(obj, "text", where, errors, allow_markup=allow_markup)
        tags = _tags(obj, where, errors)
        if text is not None:
            prompts.append(ImportedPrompt(line=number, text=text, tags=tags))
    if errors:
        raise ImportFileError(errors)
    if not prompts:
        raise ImportFileError(["the file holds no prompts"])
    return prompts


def _number(obj: dict, key: str, where: str, errors: list[str], low: float, high: float, required: bool):
    value = obj.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        errors.append(f"{where}, field {key}: must be a number from {low} to {high}")
        return None
    return value


def _dialogue(obj: dict, where: str, errors: list[str], allow_markup: bool) -> list[dict] | None:
    if "prompt" in obj and "dialogue" in obj:
        errors.append(f"{where}: give either prompt or dialogue, not both")
        return None
    if "prompt" in obj:
        text = _text(obj, "prompt", where, errors, allow_markup=allow_markup)
        return None if text is None else [{"role": "user", "content": text}]
    turns = obj.get("dialogue")
    if not isinstance(turns, list) or not turns:
        errors.append(f"{where}, field prompt: missing (give a prompt string or a dialogue list)")
        return None
    dialogue = []
    start = 1 if isinstance(turns[0], dict) and turns[0].get("role") == "system" else 0
    for i, turn in enumerate(turns):
        expected = "system" if i < start else ("user" if (i - start) % 2 == 0 else "assistant")
        turn_where = f"{where}, field dialogue[{i}]"
        if not isinstance(turn, dict) or turn.get("role") != expected:
            errors.append(
                f"{turn_where}.role: must be {expected!r} (an optional system message first, then turns alternate, "
                "starting with the user)"
            )
            return None
        content = _text(turn, "content", turn_where, errors, allow_markup=allow_markup)
        if content is None:
            return None
        dialogue.append({"role": expected, "content": content})
    if dialogue[-1]["role"] != "user":
        errors.append(f"{where}, field dialogue: must end with a user turn (the responses answer it)")
        return None
    return dialogue


def parse_comparisons(source: Iterable[str | bytes], *, allow_markup: bool = False) -> list[ImportedComparison]:
    comparisons, errors = [], []
    for number, obj, problem in _lines(source):
        if problem:
            errors.append(problem)
            continue
        where = f"line {number}"
        before = len(errors)
        dialogue = _dialogue(obj, where, errors, allow_markup)
        responses = obj.get("responses")
        parsed: list[ImportedResponse] = []
        if not isinstance(responses, list) or len(responses) != 2:
            errors.append(f"{where}, field responses: must be a list of exactly two responses")
        else:
            for i, item in enumerate(responses):
                rwhere = f"{where}, field responses[{i}]"
                if not isinstance(item, dict):
                    errors.append(f"{rwhere}: must be an object with text, variant and temperature")
                    continue
                text = _text(item, "text", rwhere, errors, allow_markup=allow_markup)
                variant = _text(item, "variant", rwhere, errors, max_len=120)
                temperature = _number(item, "temperature", rwhere, errors, 0.0, 2.0, required=True)
                top_p = _number(item, "top_p", rwhere, errors, 0.0, 1.0, required=False)
                max_new = _number(item, "max_new_tokens", rwhere, errors, 1, 32768, required=False)
                if None not in (text, variant, temperature):
                    parsed.append(ImportedResponse(text, variant, float(temperature), top_p, max_new))
            if len(parsed) == 2 and parsed[0].text == parsed[1].text:
                errors.append(f"{where}, field responses: the two responses are identical")
        tags = _tags(obj, where, errors)
        if len(errors) == before and dialogue is not None and len(parsed) == 2:
            comparisons.append(ImportedComparison(number, dialogue, (parsed[0], parsed[1]), tags))
    if errors:
        raise ImportFileError(errors)
    if not comparisons:
        raise ImportFileError(["the file holds no comparisons"])
    return comparisons
