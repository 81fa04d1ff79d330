"""Scoring of selection quizzes: pure Python, no Django.

Every auto-scored question is either *agreed* with its reference answer or not, by a rule that
`agreement_rule` states in words for the quiz author. Criteria then turn a quiz's sections into a
verdict: "at least 90% agreed on part I", "reviewers' average above 4", "more than 26 agreed".

Answers here are in canonical form (indices into the question as the author wrote it). What the
candidate sees may be permuted per attempt (ranked and compared answers, so that the author's
order never hints at the key): `from_display` and `to_display` translate.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from math import floor
from statistics import fmean
from typing import Any

MULTIPLE_CHOICE = "multiple_choice"
LABEL = "label"
GRADE = "grade"
RANK = "rank"
COMPARE = "compare"
FREE_WRITING = "free_writing"
AUTO_KINDS = (MULTIPLE_CHOICE, LABEL, GRADE, RANK, COMPARE)
KINDS = (*AUTO_KINDS, FREE_WRITING)
PERMUTED_KINDS = (RANK, COMPARE)

# Llama 2's four strength levels, strongest first (the same values as annotation.models.Strength).
STRENGTHS = ("significantly_better", "better", "slightly_better", "negligibly_better")
STRENGTH_LABELS = {
    "significantly_better": "significantly better",
    "better": "better",
    "slightly_better": "slightly better",
    "negligibly_better": "negligibly better / unsure",
}
SIDES = ("a", "b")

DEFAULT_LABEL_TOLERANCE = 0
DEFAULT_GRADE_TOLERANCE = 1
DEFAULT_MIN_TAU = 0.6
DEFAULT_STRENGTH_TOLERANCE = 1
MAX_WRITTEN_CHARS = 20_000

PERCENT_AGREED = "percent_agreed"
COUNT_AGREED = "count_agreed"
AVERAGE_GRADE = "average_grade"
MEASURES = (PERCENT_AGREED, COUNT_AGREED, AVERAGE_GRADE)
AUTO_MEASURES = (PERCENT_AGREED, COUNT_AGREED)
OPS = {"gte": "at least", "gt": "more than"}
GRADE_MIN, GRADE_MAX = 1, 5


ANSWER_FIELDS = {
    MULTIPLE_CHOICE: {"choice"},
    LABEL: {"label"},
    GRADE: {"grade"},
    RANK: {"order"},
    COMPARE: {"choice", "strength"},
    FREE_WRITING: {"responses"},
}


class AnswerError(ValueError):
    """An answer that does not fit its question; the message is shown to the candidate."""


# ---------------------------------------------------------------- answers


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AnswerError(f"{what} must be a whole number.")
    return value


def clean_answer(kind: str, content: dict, value: Any) -> dict | None:
    """Check an answer in canonical form and return it normalised; None clears the answer.

    Partial answers are accepted (a ranking with some answers placed, a comparison without its
    strength yet) so that autosave keeps whatever the candidate has done; they score as not agreed.
    """
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise AnswerError("An answer is a JSON object.")
    expected = ANSWER_FIELDS.get(kind)
    if expected is None:
        raise AnswerError(f"Unknown question kind {kind!r}.")
    unknown = sorted(set(value) - expected)
    if unknown:
        raise AnswerError(
            f"Unknown field {unknown[0]!r} in the answer; a {kind} answer has: {', '.join(sorted(expected))}."
        )
    if kind == MULTIPLE_CHOICE:
        choice = _int(value.get("choice"), "choice")
        if not 0 <= choice < len(content["options"]):
            raise AnswerError(f"choice must be between 0 and {len(content['options']) - 1}.")
        return {"choice": choice}
    if kind == LABEL:
        label = value.get("label")
        if label not in content["labels"]:
            raise AnswerError(f"label must be one of: {', '.join(content['labels'])}.")
        return {"label": label}
    if kind == GRADE:
        low, high = content["scale"]
        grade = _int(value.get("grade"), "grade")
        if not low <= grade <= high:
            raise AnswerError(f"grade must be between {low} and {high}.")
        return {"grade": grade}
    if kind == RANK:
        order = value.get("order")
        n = len(content["responses"])
        if not isinstance(order, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in order):
            raise AnswerError("order must be a list of answer positions, best first.")
        if len(set(order)) != len(order) or any(not 0 <= i < n for i in order):
            raise AnswerError(f"order must list distinct answer positions between 0 and {n - 1}.")
        return {"order": order}
    if kind == COMPARE:
        cleaned: dict[str, str] = {}
        if value.get("choice") not in (None, ""):
            if value["choice"] not in SIDES:
                raise AnswerError("choice must be 'a' or 'b'.")
            cleaned["choice"] = value["choice"]
        if value.get("strength") not in (None, ""):
            if value["strength"] not in STRENGTHS:
                raise AnswerError(f"strength must be one of: {', '.join(STRENGTHS)}.")
            cleaned["strength"] = value["strength"]
        return cleaned or None
    if kind == FREE_WRITING:
        responses = value.get("responses")
        if not isinstance(responses, dict):
            raise AnswerError("responses must map a prompt's position to the text written for it.")
        n = len(content["prompts"])
        cleaned_responses: dict[str, str] = {}
        for index, text in responses.items():
            if not str(index).isdigit() or not 0 <= int(index) < n:
                raise AnswerError(f"{index!r} is not a prompt of this question (0 to {n - 1}).")
            if not isinstance(text, str):
                raise AnswerError("Each response is a text.")
            if len(text) > MAX_WRITTEN_CHARS:
                raise AnswerError(f"A response can be at most {MAX_WRITTEN_CHARS} characters.")
            if text.strip():
                cleaned_responses[str(int(index))] = text
        maximum = content.get("max_choices")
        if maximum and len(cleaned_responses) > maximum:
            raise AnswerError(f"Write responses to at most {maximum} of the prompts.")
        return {"responses": cleaned_responses} if cleaned_responses else None
    raise AnswerError(f"Unknown question kind {kind!r}.")


def is_complete(kind: str, content: dict, answer: dict | None) -> bool:
    """Whether an answer is whole: every answer ranked, a comparison with both side and strength."""
    if not answer:
        return False
    if kind == RANK:
        return len(answer.get("order", [])) == len(content["responses"])
    if kind == COMPARE:
        return "choice" in answer and "strength" in answer
    if kind == FREE_WRITING:
        return len(written_responses(answer)) >= content.get("min_choices", 1)
    return True


def written_responses(answer: dict | None) -> dict[int, str]:
    """The non-empty written responses of a free-writing answer, by prompt position."""
    if not answer:
        return {}
    return {int(i): text for i, text in answer.get("responses", {}).items() if text.strip()}


def from_display(kind: str, permutation: Sequence[int] | None, value: Any) -> Any:
    """Translate an answer given in the candidate's display order into canonical form."""
    if not permutation or not isinstance(value, dict):
        return value
    if kind == RANK and isinstance(value.get("order"), list):
        order = value["order"]
        if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(permutation) for i in order):
            return value  # left for clean_answer to refuse with its message
        return {**value, "order": [permutation[i] for i in order]}
    if kind == COMPARE and value.get("choice") in SIDES:
        return {**value, "choice": SIDES[permutation[SIDES.index(value["choice"])]]}
    return value


def to_display(kind: str, permutation: Sequence[int] | None, value: dict | None) -> dict | None:
    """Translate a canonical answer into the candidate's display order (the inverse of from_display)."""
    if not permutation or not value:
        return value
    position = {original: shown for shown, original in enumerate(permutation)}
    if kind == RANK:
        return {**value, "order": [position[i] for i in value["order"]]}
    if kind == COMPARE and value.get("choice") in SIDES:
        return {**value, "choice": SIDES[position[SIDES.index(value["choice"])]]}
    return value


# ---------------------------------------------------------------- agreement


def kendall_tau(order: Sequence[int], reference: Sequence[int]) -> float:
    """Kendall's tau between two complete rankings of the same items (no ties): 1 - 2 D / P.

    D is the number of discordant pairs (ordered one way by one ranking and the other way by the
    other) and P = n (n - 1) / 2 the number of pairs. 1 is the same order, -1 the reverse.
    """
    if sorted(order) != sorted(reference):
        raise ValueError("Both rankings must order the same items.")
    n = len(reference)
    if n < 2:
        return 1.0
    rank = {item: i for i, item in enumerate(order)}
    discordant = sum(1 for i in range(n) for j in range(i + 1, n) if rank[reference[i]] > rank[reference[j]])
    return 1 - 2 * discordant / (n * (n - 1) / 2)


def max_discordant_pairs(n: int, min_tau: float) -> int:
    """How many pairs may be in the other order while tau stays at or above `min_tau`."""
    pairs = n * (n - 1) // 2
    return max(-1, floor((1 - min_tau) * pairs / 2 + 1e-9))


def agrees(kind: str, content: dict, key: Any, scoring: dict, answer: dict | None) -> bool:
    """Whether a canonical answer agrees with the reference answer `key` (False when unanswered)."""
    if not answer:
        return False
    if kind == MULTIPLE_CHOICE:
        return answer.get("choice") == key
    if kind == LABEL:
        labels = content["labels"]
        tolerance = scoring.get("tolerance", DEFAULT_LABEL_TOLERANCE)
        return abs(labels.index(answer["label"]) - labels.index(key)) <= tolerance
    if kind == GRADE:
        return abs(answer["grade"] - key) <= scoring.get("tolerance", DEFAULT_GRADE_TOLERANCE)
    if kind == RANK:
        order = answer.get("order", [])
        if len(order) != len(key):
            return False
        return kendall_tau(order, key) >= scoring.get("min_tau", DEFAULT_MIN_TAU) - 1e-9
    if kind == COMPARE:
        if "choice" not in answer or "strength" not in answer:
            return False
        unsure = key["strength"] == "negligibly_better"
        same_side = answer["choice"] == key["choice"] or unsure
        distance = abs(STRENGTHS.index(answer["strength"]) - STRENGTHS.index(key["strength"]))
        return same_side and distance <= scoring.get("strength_tolerance", DEFAULT_STRENGTH_TOLERANCE)
    raise ValueError(f"{kind!r} questions are not scored automatically.")


def agreement_rule(kind: str, content: dict, key: Any, scoring: dict) -> str:
    """The rule for "agreed", in words, as the quiz author sees it next to the question."""
    if kind == MULTIPLE_CHOICE:
        return f"Agreed when the candidate picks option {key + 1} ({content['options'][key]!r})."
    if kind == LABEL:
        tolerance = scoring.get("tolerance", DEFAULT_LABEL_TOLERANCE)
        if tolerance == 0:
            return f"Agreed when the candidate gives the label {key!r}."
        labels = content["labels"]
        i = labels.index(key)
        near = labels[max(0, i - tolerance) : i + tolerance + 1]
        return (
            f"Agreed when the label is within {tolerance} step{'s' if tolerance > 1 else ''} of {key!r} "
            f"on the ordered scale: {', '.join(repr(x) for x in near)}."
        )
    if kind == GRADE:
        tolerance = scoring.get("tolerance", DEFAULT_GRADE_TOLERANCE)
        low, high = content["scale"]
        accepted = [g for g in range(low, high + 1) if abs(g - key) <= tolerance]
        return (
            f"Agreed when the grade is within {tolerance} of the reference {key} "
            f"(grades {', '.join(map(str, accepted))} agree)."
        )
    if kind == RANK:
        min_tau = scoring.get("min_tau", DEFAULT_MIN_TAU)
        n = len(content["responses"])
        pairs = n * (n - 1) // 2
        allowed = max_discordant_pairs(n, min_tau)
        best_first = " > ".join(chr(ord("A") + i) for i in key)
        if allowed < 0:
            slack = "no ranking can agree (lower the threshold)"
        elif allowed == 0:
            slack = "only the exact reference order agrees"
        else:
            slack = f"at most {allowed} of the {pairs} pairs of answers may be in the other order"
        return (
            f"Measure: Kendall's tau between the candidate's order and the reference order ({best_first}), "
            f"1 - 2 x discordant pairs / {pairs}. Agreed when tau >= {min_tau:g}: with {n} answers, {slack}."
        )
    if kind == COMPARE:
        tolerance = scoring.get("strength_tolerance", DEFAULT_STRENGTH_TOLERANCE)
        choice = "A" if key["choice"] == "a" else "B"
        strength = STRENGTH_LABELS[key["strength"]]
        levels = (
            "the same strength"
            if tolerance == 0
            else f"a strength within {tolerance} level{'s' if tolerance > 1 else ''} of it"
        )
        side = (
            "either response (the reference is unsure)"
            if key["strength"] == "negligibly_better"
            else f"response {choice} as the better one"
        )
        return f"Reference: {choice} is {strength}. Agreed when the candidate picks {side} with {levels}."
    if kind == FREE_WRITING:
        return "Graded 1-5 by a reviewer against the rubric."
    raise ValueError(f"Unknown question kind {kind!r}.")


# ---------------------------------------------------------------- criteria and verdicts


@dataclass(frozen=True)
class Criterion:
    """A pass rule over some sections: `measure` `op` `threshold`, e.g. percent_agreed gte 90."""

    label: str
    sections: tuple[str, ...]
    measure: str
    op: str
    threshold: float
    gate: bool = False  # when it fails, the later sections are not offered

    def describe(self, auto_total: int | None = None) -> str:
        words = OPS[self.op]
        threshold = f"{self.threshold:g}"
        if self.measure == PERCENT_AGREED:
            rule = f"agree with the reference on {words} {threshold}% of the auto-scored questions"
        elif self.measure == COUNT_AGREED:
            of = f" of {auto_total}" if auto_total is not None else ""
            rule = f"agree with the reference on {words} {threshold}{of} auto-scored questions"
        else:
            rule = f"reviewers' average grade {words} {threshold} (of {GRADE_MAX})"
        return rule + (" (must be met to continue to the later sections)" if self.gate else "")


@dataclass(frozen=True)
class SectionTally:
    """What one section of an attempt scored so far."""

    key: str
    closed: bool  # submitted, timed out or skipped
    auto_total: int = 0
    auto_agreed: int = 0
    grades: tuple[int, ...] = ()
    grades_pending: int = 0

    @property
    def percent_agreed(self) -> float | None:
        return 100 * self.auto_agreed / self.auto_total if self.auto_total else None

    @property
    def average_grade(self) -> float | None:
        return fmean(self.grades) if self.grades and not self.grades_pending else None


@dataclass(frozen=True)
class Shortfall:
    """A free-writing question answered with fewer responses than its minimum."""

    question: str
    written: int
    required: int

    def describe(self) -> str:
        return f"{self.question}: wrote {self.written} of the required {self.required} responses."


@dataclass(frozen=True)
class CriterionResult:
    criterion: Criterion
    value: float | None
    passed: bool | None  # None: not known yet (sections open or grades pending)
    note: str = ""

    def value_text(self) -> str:
        if self.value is None:
            return self.note or "not known yet"
        if self.criterion.measure == PERCENT_AGREED:
            return f"{self.value:.4g}% agreed"
        if self.criterion.measure == COUNT_AGREED:
            return f"{self.value:g} agreed"
        return f"average grade {self.value:.3g}"


@dataclass(frozen=True)
class Verdict:
    passed: bool | None  # None: not final yet
    criteria: tuple[CriterionResult, ...]
    shortfalls: tuple[Shortfall, ...] = ()
    gate_failed: bool = False
    reasons: tuple[str, ...] = field(default=())


def _compare(value: float, op: str, threshold: float) -> bool:
    return value >= threshold - 1e-9 if op == "gte" else value > threshold + 1e-9


def evaluate_criterion(criterion: Criterion, tallies: dict[str, SectionTally]) -> CriterionResult:
    sections = [tallies[key] for key in criterion.sections]
    if not all(s.closed for s in sections):
        return CriterionResult(criterion, None, None, "sections not finished")
    if criterion.measure in AUTO_MEASURES:
        total = sum(s.auto_total for s in sections)
        agreed = sum(s.auto_agreed for s in sections)
        value = 100 * agreed / total if criterion.measure == PERCENT_AGREED and total else float(agreed)
        return CriterionResult(criterion, value, _compare(value, criterion.op, criterion.threshold))
    if any(s.grades_pending for s in sections):
        return CriterionResult(criterion, None, None, "waiting for reviewers")
    grades = [g for s in sections for g in s.grades]
    if not grades:
        return CriterionResult(criterion, None, False, "nothing was written")
    value = fmean(grades)
    return CriterionResult(criterion, value, _compare(value, criterion.op, criterion.threshold))


def evaluate(
    criteria: Iterable[Criterion], tallies: dict[str, SectionTally], shortfalls: Iterable[Shortfall] = ()
) -> Verdict:
    """Pass when every criterion is met and no free-writing minimum is missed.

    The verdict is known (not None) as soon as it cannot change: every criterion decided, or any
    one of them (or a shortfall) already failed, in which case pending grades cannot rescue it.
    """
    results = tuple(evaluate_criterion(c, tallies) for c in criteria)
    shortfalls = tuple(shortfalls)
    reasons = [
        f"Not met · {r.criterion.label}: {r.value_text()} (needed: {r.criterion.describe()})."
        for r in results
        if r.passed is False
    ]
    reasons += [s.describe() for s in shortfalls]
    gate_failed = any(r.passed is False and r.criterion.gate for r in results)
    if reasons:
        return Verdict(False, results, shortfalls, gate_failed, tuple(reasons))
    if any(r.passed is None for r in results):
        return Verdict(None, results, shortfalls)
    return Verdict(True, results, shortfalls)
