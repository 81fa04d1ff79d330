"""Parsing and validation of open-source preference files (pure; no Django).

Two styles, each as JSONL or Parquet (told apart by Parquet's "PAR1" magic bytes):

* Anthropic HH-RLHF: ``{"chosen": "\\n\\nHuman: ...\\n\\nAssistant: ...", "rejected": "..."}``, two
  full transcripts that share every turn but the last Assistant one.
* TRL preference: ``{"prompt": ..., "chosen": ..., "rejected": ...}``, plain (strings) or
  conversational (lists of ``{"role", "content"}`` messages; ``chosen``/``rejected`` then hold the
  one assistant message). TRL's implicit-prompt form (no ``prompt``, full conversations in
  ``chosen``/``rejected``) is read like HH-RLHF: the shared turns are the prompt; as plain strings
  (no "Human:" markers) the prompt is their longest common prefix, as TRL extracts it.
* UltraFeedback-binarized: ``{"prompt": "...", "chosen": [user, assistant], "rejected": [user,
  assistant], "score_chosen": 8.5, "score_rejected": 4.0}``: the message lists repeat the prompt's
  turns, which are checked against ``prompt`` and dropped.

Optional fields in every style: ``strength`` (one of the four Preflab codes; unknown means margin
0) and ``safety_label`` (a Llama 2 safety bin, or ``chosen_unsafe_other_safe``, which is kept and
then excluded by the dataset builder with a count). Without ``strength``, a row with both
``score_chosen`` and ``score_rejected`` gets the strength its score gap maps to (`strength_of_gap`,
on UltraFeedback's 1–10 scale), so Llama 2's margins apply. Other fields are ignored.

A context is Preflab's shape: an optional system message, then turns alternating user and
assistant, starting and ending with the user. In HH-RLHF transcripts, text before the first
"\n\nHuman:" is the system message (this is how Preflab's HH export writes one). The whole file is
checked before anything is written; every error names the line (JSONL) or row (Parquet) and the
field, like ``annotation.importing``; when the format was detected, also the format the line was read
as, and a line in another format than the file's first is refused as such.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from annotation.importing import ImportFileError
from core.text import control_character_problem

from .rules import FORBIDDEN_SAFETY_LABEL, SAFETY_BINS, STRENGTHS

MAX_TEXT = 200_000
FORMATS = ("hh_rlhf", "trl", "ultrafeedback")
FORMAT_NAMES = {"hh_rlhf": "HH-RLHF", "trl": "TRL", "ultrafeedback": "UltraFeedback"}
# Score gap (chosen minus rejected, UltraFeedback's 1–10 scale) -> the strength whose margin applies.
# GPT-4's overall scores move in steps of 0.5-1; a gap of 3 or more is a clear win, under 1 a near tie.
GAP_STRENGTHS = ((3.0, "significantly_better"), (2.0, "better"), (1.0, "slightly_better"))
PARQUET_MAGIC = b"PAR1"
_PARQUET_BATCH_ROWS = 2_000
_TURN = re.compile(r"\n\n(Human|Assistant):")
_ROLE_OF_SPEAKER = {"Human": "user", "Assistant": "assistant"}


class ExternalFileError(ImportFileError):
    """The file does not validate; `errors` lists "line N, field F: what is wrong"."""


@dataclass(frozen=True, slots=True)
class ExternalPair:
    line: int  # line (JSONL) or row (Parquet), counted from 1
    context: list[dict]
    chosen: str
    rejected: str
    strength: str = ""
    safety_label: str = ""


@dataclass(frozen=True)
class ExternalFileInfo:
    format: str
    file_type: str  # "jsonl" or "parquet"
    rows: int


def file_type_of(source: IO[bytes]) -> str:
    start = source.read(4)
    source.seek(0)
    return "parquet" if start == PARQUET_MAGIC else "jsonl"


# --- records ----------------------------------------------------------------------------------

Record = tuple[int, str, dict | None, str | None]  # (number, "line N" / "row N", record, problem)


def _jsonl_records(source: IO[bytes]) -> Iterator[Record]:
    for number, raw in enumerate(source, start=1):
        where = f"line {number}"
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            yield number, where, None, f"{where}: not valid UTF-8"
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, where, None, f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        if not isinstance(obj, dict):
            yield number, where, None, f"{where}: expected a JSON object, got {type(obj).__name__}"
            continue
        yield number, where, obj, None


def _parquet_records(source: IO[bytes]) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as exc:
        yield 0, "file", None, f"not a readable Parquet file ({exc})"
        return
    present = parquet.schema_arrow.names
    columns = ("prompt", "chosen", "rejected", "strength", "safety_label", "score_chosen", "score_rejected")
    wanted = [name for name in columns if name in present]
    number = 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=wanted):
        for record in batch.to_pylist():
            number += 1
            yield number, f"row {number}", record, None


def _records(source: IO[bytes], file_type: str) -> Iterator[Record]:
    return _parquet_records(source) if file_type == "parquet" else _jsonl_records(source)


def detect_format(record: dict) -> str | None:
    chosen = record.get("chosen")
    if record.get("prompt") is not None:
        # UltraFeedback's message lists repeat the user turn; TRL's hold only the assistant reply.
        if isinstance(chosen, list) and chosen and isinstance(chosen[0], dict) and chosen[0].get("role") != "assistant":
            return "ultrafeedback"
        return "trl"
    if isinstance(chosen, list):
        return "trl"
    if isinstance(chosen, str) and ("Human:" in chosen or "Assistant:" in chosen):
        return "hh_rlhf"
    if isinstance(chosen, str) and isinstance(record.get("rejected"), str):
        return "trl"  # implicit prompt, plain text
    return None


# --- fields -----------------------------------------------------------------------------------


def _string(value: Any, where: str, name: str, errors: list[str], *, allow_empty: bool = False) -> str | None:
    if not isinstance(value, str):
        kind = "missing" if value is None else f"a {type(value).__name__}"
        errors.append(f"{where}, field {name}: must be a string, got {kind}")
        return None
    if not allow_empty and not value.strip():
        errors.append(f"{where}, field {name}: must not be empty")
        return None
    if len(value) > MAX_TEXT:
        errors.append(f"{where}, field {name}: longer than {MAX_TEXT} characters")
        return None
    if problem := control_character_problem(value):
        errors.append(f"{where}, field {name}: {problem}")
        return None
    return value.strip()


def _check_context(turns: list[dict], where: str, name: str, errors: list[str]) -> list[dict] | None:
    """An optional system message, then user and assistant turns alternating, from and to a user turn."""
    start = 1 if turns and turns[0]["role"] == "system" else 0
    if len(turns) == start:
        errors.append(f"{where}, field {name}: no user turn before the responses")
        return None
    for i, turn in enumerate(turns[start:], start=start):
        expected = "user" if (i - start) % 2 == 0 else "assistant"
        if turn["role"] != expected:
            where_else = " (a system message may only come first)" if turn["role"] == "system" else ""
            errors.append(
                f"{where}, field {name}[{i}]: role {turn['role']!r} where {expected!r} was expected "
                f"(turns alternate, starting with the user){where_else}"
            )
            return None
    if turns[-1]["role"] != "user":
        errors.append(f"{where}, field {name}: must end with a user turn (the responses answer it)")
        return None
    return turns


def _messages(value: Any, where: str, name: str, errors: list[str]) -> list[dict] | None:
    if not isinstance(value, list):
        errors.append(f"{where}, field {name}: must be a string or a list of messages")
        return None
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
            errors.append(f"{where}, field {name}[{i}]: must be a message with role user or assistant and content")
            return None
        content = _string(message.get("content"), where, f"{name}[{i}].content", errors, allow_empty=True)
        if content is None:
            return None
        messages.append({"role": message["role"], "content": content})
    return messages


def strength_of_gap(gap: float) -> str:
    """The strength level of a score gap: 3 or more significantly better, 2 better, 1 slightly better,
    less negligibly better (also for a tie, which the binarized files break at random)."""
    for floor, strength in GAP_STRENGTHS:
        if gap >= floor:
            return strength
    return "negligibly_better"


def _strength_from_scores(record: dict, where: str, errors: list[str]) -> str:
    chosen, rejected = record.get("score_chosen"), record.get("score_rejected")
    if chosen is None or rejected is None:
        return ""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (chosen, rejected))
    if not numbers or chosen != chosen or rejected != rejected:  # NaN is not a score
        errors.append(f"{where}, field score_chosen: score_chosen and score_rejected must be numbers")
        return ""
    if chosen < rejected:
        errors.append(
            f"{where}, field score_chosen: {chosen:g} is below score_rejected {rejected:g}; the chosen response "
            "must score at least as high"
        )
        return ""
    return strength_of_gap(chosen - rejected)


def _optional_codes(record: dict, where: str, errors: list[str]) -> tuple[str, str]:
    strength = record.get("strength") or ""
    if strength and strength not in STRENGTHS:
        errors.append(f"{where}, field strength: {strength!r} is not one of {', '.join(STRENGTHS)}")
        strength = ""
    elif not strength:
        strength = _strength_from_scores(record, where, errors)
    safety = record.get("safety_label") or ""
    if safety and safety not in (*SAFETY_BINS, FORBIDDEN_SAFETY_LABEL):
        errors.append(
            f"{where}, field safety_label: {safety!r} is not one of {', '.join((*SAFETY_BINS, FORBIDDEN_SAFETY_LABEL))}"
        )
        safety = ""
    return strength, safety


def _split_shared(
    chosen: list[dict], rejected: list[dict], where: str, errors: list[str]
) -> tuple[list[dict], str, str] | None:
    """Two full conversations -> (shared context, chosen reply, rejected reply)."""
    for name, turns in (("chosen", chosen), ("rejected", rejected)):
        if not turns or turns[-1]["role"] != "assistant":
            errors.append(f"{where}, field {name}: must end with an Assistant turn (the response)")
            return None
    context, other = chosen[:-1], rejected[:-1]
    if context != other:
        differs = next(
            (i for i, (a, b) in enumerate(zip(context, other, strict=False)) if a != b), min(len(context), len(other))
        )
        errors.append(
            f"{where}: chosen and rejected differ before their last Assistant turn (first at turn {differs}); "
            "they must share the dialogue and differ only in the response"
        )
        return None
    if _check_context(context, where, "chosen", errors) is None:
        return None
    return context, chosen[-1]["content"], rejected[-1]["content"]


def hh_turns(transcript: str, where: str, name: str, errors: list[str]) -> list[dict] | None:
    """Split "\\n\\nHuman: ...\\n\\nAssistant: ..." into messages."""
    text = "\n\n" + transcript.lstrip("\n") if transcript.lstrip().startswith(("Human:", "Assistant:")) else transcript
    parts = _TURN.split(text)
    system = [{"role": "system", "content": parts[0].strip()}] if parts[0].strip() else []
    turns = [
        {"role": _ROLE_OF_SPEAKER[speaker], "content": content.strip()}
        for speaker, content in zip(parts[1::2], parts[2::2], strict=True)
    ]
    if not turns:
        errors.append(f'{where}, field {name}: no "\\n\\nHuman:" / "\\n\\nAssistant:" turns found')
        return None
    for i, turn in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if turn["role"] != expected:
            speaker = "Human" if expected == "user" else "Assistant"
            errors.append(f"{where}, field {name}: turn {i} should be {speaker} (turns alternate, starting with Human)")
            return None
    return system + turns


def _parse_hh(record: dict, where: str, errors: list[str]) -> tuple[list[dict], str, str] | None:
    chosen = _string(record.get("chosen"), where, "chosen", errors)
    rejected = _string(record.get("rejected"), where, "rejected", errors)
    if chosen is None or rejected is None:
        return None
    chosen_turns = hh_turns(record["chosen"], where, "chosen", errors)
    rejected_turns = hh_turns(record["rejected"], where, "rejected", errors)
    if chosen_turns is None or rejected_turns is None:
        return None
    return _split_shared(chosen_turns, rejected_turns, where, errors)


def _reply(value: Any, where: str, name: str, errors: list[str]) -> str | None:
    if isinstance(value, str):
        return _string(value, where, name, errors, allow_empty=True)
    messages = _messages(value, where, name, errors)
    if messages is None:
        return None
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        errors.append(f"{where}, field {name}: must hold exactly one assistant message when a prompt is given")
        return None
    return messages[0]["content"]


def _implicit_plain(record: dict, where: str, errors: list[str]) -> tuple[list[dict], str, str] | None:
    """TRL's implicit prompt as plain text: the prompt is the two strings' longest common prefix (cut
    back to the last whitespace, so a shared first letter of the answers stays in the answers)."""
    chosen = _string(record.get("chosen"), where, "chosen", errors)
    rejected = _string(record.get("rejected"), where, "rejected", errors)
    if chosen is None or rejected is None:
        return None
    shared = 0
    for a, b in zip(chosen, rejected, strict=False):
        if a != b:
            break
        shared += 1
    cut = max(chosen.rfind(" ", 0, shared + 1), chosen.rfind("\n", 0, shared + 1)) + 1 if shared < len(chosen) else 0
    prompt = chosen[:cut].strip()
    if not prompt:
        errors.append(
            f"{where}: chosen and rejected share no prompt (implicit-prompt rows start with the same prompt text); "
            "give a prompt field"
        )
        return None
    return [{"role": "user", "content": prompt}], chosen[cut:].strip(), rejected[cut:].strip()


def _prompt_context(prompt: Any, where: str, errors: list[str]) -> list[dict] | None:
    """A ``prompt`` field as a context: a string is one user turn, a list is checked as messages."""
    if isinstance(prompt, str):
        text = _string(prompt, where, "prompt", errors)
        return None if text is None else [{"role": "user", "content": text}]
    messages = _messages(prompt, where, "prompt", errors)
    return None if messages is None else _check_context(messages, where, "prompt", errors)


def _parse_trl(record: dict, where: str, errors: list[str]) -> tuple[list[dict], str, str] | None:
    if "prompt" not in record or record["prompt"] is None:
        if isinstance(record.get("chosen"), str) and isinstance(record.get("rejected"), str):
            return _implicit_plain(record, where, errors)
        # TRL's implicit prompt: full conversations whose shared turns are the prompt.
        chosen = _messages(record.get("chosen"), where, "chosen", errors)
        rejected = _messages(record.get("rejected"), where, "rejected", errors)
        if chosen is None or rejected is None:
            return None
        return _split_shared(chosen, rejected, where, errors)
    context = _prompt_context(record["prompt"], where, errors)
    chosen = _reply(record.get("chosen"), where, "chosen", errors)
    rejected = _reply(record.get("rejected"), where, "rejected", errors)
    if context is None or chosen is None or rejected is None:
        return None
    return context, chosen, rejected


def _parse_ultrafeedback(record: dict, where: str, errors: list[str]) -> tuple[list[dict], str, str] | None:
    """A prompt, and chosen/rejected conversations that repeat it before their one assistant reply."""
    context = _prompt_context(record.get("prompt"), where, errors)
    chosen = _messages(record.get("chosen"), where, "chosen", errors)
    rejected = _messages(record.get("rejected"), where, "rejected", errors)
    if context is None or chosen is None or rejected is None:
        return None
    replies = []
    for name, conversation in (("chosen", chosen), ("rejected", rejected)):
        if conversation[:-1] != context or not conversation or conversation[-1]["role"] != "assistant":
            errors.append(
                f"{where}, field {name}: must repeat the prompt's turns and end with one assistant reply "
                f"({len(context)} prompt turn(s) expected before it)"
            )
            return None
        replies.append(conversation[-1]["content"])
    return context, replies[0], replies[1]


_PARSERS = {"hh_rlhf": _parse_hh, "trl": _parse_trl, "ultrafeedback": _parse_ultrafeedback}


def _parse_record(record: dict, fmt: str, number: int, where: str, errors: list[str]) -> ExternalPair | None:
    before = len(errors)
    parsed = _PARSERS[fmt](record, where, errors)
    strength, safety = _optional_codes(record, where, errors)
    if parsed is None or len(errors) > before:
        return None
    context, chosen, rejected = parsed
    if chosen == rejected:
        errors.append(f"{where}: the chosen and rejected responses are identical (no preference to learn)")
        return None
    return ExternalPair(number, context, chosen, rejected, strength, safety)


# --- the two passes ---------------------------------------------------------------------------


def _pairs(source: IO[bytes], state: dict, errors: list[str]) -> Iterator[ExternalPair]:
    """Parse every record; `state["format"]` starts as the requested format and ends as the one read."""
    state.setdefault("requested", state["format"])
    if state["format"] not in (*FORMATS, "auto"):
        raise ExternalFileError([f"unknown format {state['format']!r}; use one of: auto, {', '.join(FORMATS)}"])
    for number, where, record, problem in _records(source, file_type_of(source)):
        if problem:
            errors.append(problem)
            continue
        if state["requested"] == "auto":
            detected = detect_format(record)
            if detected is None:
                errors.append(
                    f"{where}: cannot tell the format: expected HH-RLHF (chosen/rejected transcripts with "
                    '"\\n\\nHuman:" turns), TRL (prompt/chosen/rejected) or UltraFeedback (prompt, and '
                    "chosen/rejected conversations that repeat it)"
                )
                if state["format"] == "auto":
                    return
                continue
            if state["format"] == "auto":
                state["format"], state["first"] = detected, where
            elif detected != state["format"]:
                errors.append(
                    f"{where}: reads as {FORMAT_NAMES[detected]}, but the file is {FORMAT_NAMES[state['format']]} "
                    f"(detected from {state['first']}); put each format in a file of its own"
                )
                continue
            where = f"{where} (read as {FORMAT_NAMES[detected]})"
        pair = _parse_record(record, state["format"], number, where, errors)
        if pair is not None:
            yield pair


def validate_external(source: IO[bytes], fmt: str = "auto") -> ExternalFileInfo:
    """Read the whole file and check every row; raise `ExternalFileError` listing every problem."""
    errors: list[str] = []
    state = {"format": fmt}
    file_type = file_type_of(source)
    rows = sum(1 for _ in _pairs(source, state, errors))
    source.seek(0)
    if errors:
        raise ExternalFileError(errors)
    if rows == 0:
        raise ExternalFileError(["the file holds no preference pairs"])
    return ExternalFileInfo(format=state["format"], file_type=file_type, rows=rows)


def iter_external(source: IO[bytes], fmt: str) -> Iterator[ExternalPair]:
    """The pairs of a file that `validate_external` accepted (read again, so memory stays flat)."""
    errors: list[str] = []
    source.seek(0)
    yield from _pairs(source, {"format": fmt}, errors)
    if errors:
        raise ExternalFileError(errors)


def parse_external(source: IO[bytes], fmt: str = "auto") -> tuple[ExternalFileInfo, list[ExternalPair]]:
    """Validate and return every pair (small files and tests; the importer streams with `iter_external`)."""
    info = validate_external(source, fmt)
    return info, list(iter_external(source, info.format))
