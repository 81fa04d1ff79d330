"""The quiz JSON format (import, export, the Llama 2 template): validation, pure Python, no Django.

A document is one quiz, or a bundle `{"quizzes": [quiz, ...]}`. A quiz:

    {"format": "preflab-quiz/1", "slug": "...", "title": "...", "description": "...",
     "time_limit_minutes": null, "max_attempts": 2, "shuffle_questions": true,
     "show_section_scores": true, "required_for_focus": "none" | "helpfulness" | "safety" | "all",
     "sections": [{"key": "...", "title": "...", "instructions": "...", "time_limit_minutes": 15,
                   "questions": [{"kind": "...", "text": "...", ...kind fields..., "answer": ...}]}],
     "criteria": [{"label": "...", "sections": ["key", ...], "measure": "percent_agreed",
                   "op": "gte", "threshold": 90, "gate": true}]}

Kind fields (the reference answer is always `answer`; written questions have a `rubric`):

    multiple_choice  options [str, ...]; answer: option position (0-based)
    label            prompt, response, labels [str, ...] (ordered when ordinal); answer: a label;
                     tolerance: steps on the label scale still agreed (default 0)
    grade            prompt, response, scale [low, high] (default [1, 5]); answer: a grade;
                     tolerance (default 1)
    rank             prompt, responses [str, ...]; answer: positions best first; min_tau (default 0.6)
    compare          prompt, responses [a, b]; answer {"choice": "a"|"b", "strength": ...};
                     strength_tolerance: levels (default 1)
    free_writing     prompts [str, ...], min_choices (default 1), max_choices (default none), rubric

The whole document is checked before anything is written; every error names its path, like
`sections[2].questions[5].answer`.
"""

from typing import Any

from . import scoring

FORMAT = "preflab-quiz/1"
BUNDLE_FORMAT = "preflab-quiz-bundle/1"
FOCUSES = ("none", "helpfulness", "safety", "all")
MAX_ERRORS = 50
MAX_TIME_LIMIT_MINUTES = 24 * 60

QUIZ_FIELDS = {
    "format",
    "slug",
    "title",
    "description",
    "time_limit_minutes",
    "max_attempts",
    "shuffle_questions",
    "show_section_scores",
    "required_for_focus",
    "sections",
    "criteria",
    "version",  # written by export for the reader; import always makes a new version
}
SECTION_FIELDS = {"key", "title", "instructions", "time_limit_minutes", "questions"}
COMMON_QUESTION_FIELDS = {"kind", "text"}
KIND_FIELDS = {
    scoring.MULTIPLE_CHOICE: {"options", "answer"},
    scoring.LABEL: {"prompt", "response", "labels", "answer", "tolerance"},
    scoring.GRADE: {"prompt", "response", "scale", "answer", "tolerance"},
    scoring.RANK: {"prompt", "responses", "answer", "min_tau"},
    scoring.COMPARE: {"prompt", "responses", "answer", "strength_tolerance"},
    scoring.FREE_WRITING: {"prompts", "min_choices", "max_choices", "rubric"},
}
CRITERION_FIELDS = {"label", "sections", "measure", "op", "threshold", "gate"}


class QuizFormatError(ValueError):
    """The document does not follow the format; `errors` lists "path: message" lines."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        shown = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
        super().__init__(f"The quiz file has {len(errors)} error{'s' if len(errors) != 1 else ''}: {shown}")


class _Checker:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(f"{path}: {message}" if path else message)

    def unknown(self, data: dict, allowed: set[str], path: str) -> None:
        for name in sorted(set(data) - allowed):
            self.error(_join(path, name), "unknown field (check the spelling)")

    def text(self, data: dict, name: str, path: str, *, required: bool = True, max_length: int = 20_000) -> str:
        value = data.get(name)
        if value is None or value == "":
            if required:
                self.error(_join(path, name), "required text is missing")
            return ""
        if not isinstance(value, str):
            self.error(_join(path, name), "must be a text")
            return ""
        if len(value) > max_length:
            self.error(_join(path, name), f"at most {max_length} characters")
        return value.strip()

    def integer(self, data: dict, name: str, path: str, *, default: int | None, low: int, high: int) -> int | None:
        value = data.get(name, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(_join(path, name), "must be a whole number")
            return default
        if not low <= value <= high:
            self.error(_join(path, name), f"must be between {low} and {high}")
            return default
        return value

    def number(self, data: dict, name: str, path: str, *, default: float, low: float, high: float) -> float:
        value = data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(_join(path, name), "must be a number")
            return default
        if not low <= value <= high:
            self.error(_join(path, name), f"must be between {low:g} and {high:g}")
            return default
        return float(value)

    def boolean(self, data: dict, name: str, path: str, *, default: bool) -> bool:
        value = data.get(name, default)
        if not isinstance(value, bool):
            self.error(_join(path, name), "must be true or false")
            return default
        return value

    def texts(self, data: dict, name: str, path: str, *, low: int, high: int) -> list[str]:
        value = data.get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.error(_join(path, name), "must be a list of non-empty texts")
            return []
        if not low <= len(value) <= high:
            self.error(_join(path, name), f"must have between {low} and {high} entries (has {len(value)})")
            return []
        return [v.strip() for v in value]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def validate_document(document: Any) -> list[dict]:
    """Check a whole document (one quiz or a bundle) and return its quizzes normalised.

    Raises QuizFormatError listing every problem found (up to 50), each with its path.
    """
    checker = _Checker()
    if not isinstance(document, dict):
        raise QuizFormatError(['The document must be a JSON object: one quiz, or {"quizzes": [...]}.'])
    if "quizzes" in document:
        checker.unknown(document, {"quizzes", "format"}, "")
        if document.get("format", BUNDLE_FORMAT) != BUNDLE_FORMAT:
            checker.error("format", f"unsupported format {document.get('format')!r}; expected {BUNDLE_FORMAT!r}")
        items = document["quizzes"]
        if not isinstance(items, list) or not items:
            raise QuizFormatError(["quizzes: must be a non-empty list of quizzes"])
        quizzes = [_quiz(checker, item, f"quizzes[{i}]") for i, item in enumerate(items)]
        slugs = [q["slug"] for q in quizzes if q and q["slug"]]
        for slug in sorted({s for s in slugs if slugs.count(s) > 1}):
            checker.error("quizzes", f"the slug {slug!r} is used twice")
    else:
        quizzes = [_quiz(checker, document, "")]
    if checker.errors:
        raise QuizFormatError(checker.errors)
    return quizzes


def _quiz(checker: _Checker, data: Any, path: str) -> dict:
    if not isinstance(data, dict):
        checker.error(path, "a quiz must be a JSON object")
        return {}
    checker.unknown(data, QUIZ_FIELDS, path)
    if data.get("format", FORMAT) != FORMAT:
        checker.error(_join(path, "format"), f"unsupported format {data.get('format')!r}; expected {FORMAT!r}")
    slug = checker.text(data, "slug", path, max_length=80)
    if slug and not all(c.isascii() and (c.isalnum() or c in "-_") for c in slug):
        checker.error(_join(path, "slug"), "use only letters, digits, '-' and '_'")
    focus = data.get("required_for_focus", "none")
    if focus not in FOCUSES:
        checker.error(_join(path, "required_for_focus"), f"must be one of: {', '.join(FOCUSES)}")
    quiz = {
        "slug": slug,
        "title": checker.text(data, "title", path, max_length=200),
        "description": checker.text(data, "description", path, required=False),
        "time_limit_minutes": checker.integer(
            data, "time_limit_minutes", path, default=None, low=1, high=MAX_TIME_LIMIT_MINUTES
        ),
        "max_attempts": checker.integer(data, "max_attempts", path, default=2, low=1, high=20),
        "shuffle_questions": checker.boolean(data, "shuffle_questions", path, default=False),
        "show_section_scores": checker.boolean(data, "show_section_scores", path, default=True),
        "required_for_focus": focus if focus in FOCUSES else "none",
        "sections": [],
        "criteria": [],
    }
    sections = data.get("sections")
    if not isinstance(sections, list) or not sections:
        checker.error(_join(path, "sections"), "a quiz needs a non-empty list of sections")
        return quiz
    for i, section in enumerate(sections):
        quiz["sections"].append(_section(checker, section, f"{_join(path, 'sections')}[{i}]"))
    keys = [s.get("key") for s in quiz["sections"]]
    for i, key in enumerate(keys):
        if key and keys.index(key) != i:
            checker.error(f"{_join(path, 'sections')}[{i}].key", f"the key {key!r} is already used by another section")
    criteria = data.get("criteria")
    if not isinstance(criteria, list) or not criteria:
        checker.error(_join(path, "criteria"), "a quiz needs at least one pass criterion")
        return quiz
    by_key = {s["key"]: s for s in quiz["sections"] if s.get("key")}
    for i, criterion in enumerate(criteria):
        quiz["criteria"].append(_criterion(checker, criterion, f"{_join(path, 'criteria')}[{i}]", by_key, keys))
    return quiz


def _section(checker: _Checker, data: Any, path: str) -> dict:
    if not isinstance(data, dict):
        checker.error(path, "a section must be a JSON object")
        return {}
    checker.unknown(data, SECTION_FIELDS, path)
    key = checker.text(data, "key", path, max_length=50)
    if key and not all(c.isascii() and (c.isalnum() or c in "-_") for c in key):
        checker.error(_join(path, "key"), "use only letters, digits, '-' and '_'")
    section = {
        "key": key,
        "title": checker.text(data, "title", path, max_length=200),
        "instructions": checker.text(data, "instructions", path, required=False),
        "time_limit_minutes": checker.integer(
            data, "time_limit_minutes", path, default=None, low=1, high=MAX_TIME_LIMIT_MINUTES
        ),
        "questions": [],
    }
    questions = data.get("questions")
    if not isinstance(questions, list) or not questions:
        checker.error(_join(path, "questions"), "a section needs a non-empty list of questions")
        return section
    for i, question in enumerate(questions):
        section["questions"].append(_question(checker, question, f"{_join(path, 'questions')}[{i}]"))
    return section


def _question(checker: _Checker, data: Any, path: str) -> dict:
    if not isinstance(data, dict):
        checker.error(path, "a question must be a JSON object")
        return {}
    kind = data.get("kind")
    if kind not in scoring.KINDS:
        checker.error(_join(path, "kind"), f"must be one of: {', '.join(scoring.KINDS)}")
        return {}
    checker.unknown(data, COMMON_QUESTION_FIELDS | KIND_FIELDS[kind], path)
    question: dict[str, Any] = {"kind": kind, "text": checker.text(data, "text", path)}
    answer_path = _join(path, "answer")
    answer = data.get("answer")
    if kind != scoring.FREE_WRITING and "answer" not in data:
        checker.error(answer_path, "the reference answer is missing")
        return question
    if kind == scoring.MULTIPLE_CHOICE:
        options = checker.texts(data, "options", path, low=2, high=12)
        question["options"] = options
        if options and (isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(options)):
            checker.error(answer_path, f"must be the position of the right option, 0 to {len(options) - 1}")
        question["answer"] = answer
    elif kind == scoring.LABEL:
        question["prompt"] = checker.text(data, "prompt", path)
        question["response"] = checker.text(data, "response", path)
        labels = checker.texts(data, "labels", path, low=2, high=10)
        question["labels"] = labels
        if labels and len(set(labels)) != len(labels):
            checker.error(_join(path, "labels"), "labels must be distinct")
        if labels and answer not in labels:
            checker.error(answer_path, f"must be one of the labels: {', '.join(labels)}")
        question["answer"] = answer
        question["tolerance"] = checker.integer(
            data, "tolerance", path, default=scoring.DEFAULT_LABEL_TOLERANCE, low=0, high=9
        )
    elif kind == scoring.GRADE:
        question["prompt"] = checker.text(data, "prompt", path)
        question["response"] = checker.text(data, "response", path)
        scale = data.get("scale", [1, 5])
        if (
            not isinstance(scale, list)
            or len(scale) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in scale)
            or not 0 <= scale[0] < scale[1] <= 10
        ):
            checker.error(_join(path, "scale"), "must be [low, high] with 0 <= low < high <= 10")
            scale = [1, 5]
        question["scale"] = scale
        if isinstance(answer, bool) or not isinstance(answer, int) or not scale[0] <= answer <= scale[1]:
            checker.error(answer_path, f"must be a whole grade from {scale[0]} to {scale[1]}")
        question["answer"] = answer
        question["tolerance"] = checker.integer(
            data, "tolerance", path, default=scoring.DEFAULT_GRADE_TOLERANCE, low=0, high=10
        )
    elif kind == scoring.RANK:
        question["prompt"] = checker.text(data, "prompt", path)
        responses = checker.texts(data, "responses", path, low=2, high=8)
        question["responses"] = responses
        if responses and (
            not isinstance(answer, list)
            or any(isinstance(i, bool) or not isinstance(i, int) for i in answer)
            or sorted(answer) != list(range(len(responses)))
        ):
            checker.error(
                answer_path,
                f"must list every response position 0 to {len(responses) - 1} once, best first",
            )
        question["answer"] = answer
        question["min_tau"] = checker.number(data, "min_tau", path, default=scoring.DEFAULT_MIN_TAU, low=-1, high=1)
    elif kind == scoring.COMPARE:
        question["prompt"] = checker.text(data, "prompt", path)
        question["responses"] = checker.texts(data, "responses", path, low=2, high=2)
        if (
            not isinstance(answer, dict)
            or answer.get("choice") not in scoring.SIDES
            or answer.get("strength") not in scoring.STRENGTHS
            or set(answer) != {"choice", "strength"}
        ):
            checker.error(
                answer_path,
                f'must be {{"choice": "a" or "b", "strength": one of {", ".join(scoring.STRENGTHS)}}}',
            )
        question["answer"] = answer
        question["strength_tolerance"] = checker.integer(
            data, "strength_tolerance", path, default=scoring.DEFAULT_STRENGTH_TOLERANCE, low=0, high=3
        )
    else:
        prompts = checker.texts(data, "prompts", path, low=1, high=50)
        question["prompts"] = prompts
        question["rubric"] = checker.text(data, "rubric", path)
        minimum = checker.integer(data, "min_choices", path, default=1, low=1, high=50)
        maximum = checker.integer(data, "max_choices", path, default=None, low=1, high=50)
        if prompts and minimum and minimum > len(prompts):
            checker.error(_join(path, "min_choices"), f"cannot be more than the {len(prompts)} prompts")
        if minimum and maximum and maximum < minimum:
            checker.error(_join(path, "max_choices"), "cannot be less than min_choices")
        question["min_choices"] = minimum
        question["max_choices"] = maximum
    return question


def _criterion(checker: _Checker, data: Any, path: str, sections: dict[str, dict], order: list) -> dict:
    if not isinstance(data, dict):
        checker.error(path, "a criterion must be a JSON object")
        return {}
    checker.unknown(data, CRITERION_FIELDS, path)
    keys = data.get("sections")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        checker.error(_join(path, "sections"), "must be a non-empty list of section keys")
        keys = []
    for i, key in enumerate(keys):
        if key not in sections:
            checker.error(f"{_join(path, 'sections')}[{i}]", f"there is no section with the key {key!r}")
    covered = [sections[k] for k in keys if k in sections]
    measure = data.get("measure")
    if measure not in scoring.MEASURES:
        checker.error(_join(path, "measure"), f"must be one of: {', '.join(scoring.MEASURES)}")
    op = data.get("op", "gte")
    if op not in scoring.OPS:
        checker.error(_join(path, "op"), "must be 'gte' (at least) or 'gt' (more than)")
    auto_total = sum(1 for s in covered for q in s.get("questions", []) if q.get("kind") in scoring.AUTO_KINDS)
    written = sum(1 for s in covered for q in s.get("questions", []) if q.get("kind") == scoring.FREE_WRITING)
    high = {"percent_agreed": 100, "count_agreed": max(auto_total, 0), "average_grade": scoring.GRADE_MAX}.get(
        measure, 100
    )
    threshold = checker.number(data, "threshold", path, default=0, low=0, high=high)
    gate = checker.boolean(data, "gate", path, default=False)
    if covered and measure in scoring.AUTO_MEASURES and auto_total == 0:
        checker.error(_join(path, "sections"), "these sections have no auto-scored questions to agree on")
    if covered and measure == scoring.AVERAGE_GRADE and written == 0:
        checker.error(_join(path, "sections"), "these sections have no written questions for reviewers to grade")
    if gate and measure == scoring.AVERAGE_GRADE:
        checker.error(_join(path, "gate"), "only auto-scored criteria can gate: written grades come after the quiz")
    if gate and keys and all(k in order for k in keys) and max(order.index(k) for k in keys) == len(order) - 1:
        checker.error(_join(path, "gate"), "a gate must come before a later section; this one covers the last section")
    return {
        "label": checker.text(data, "label", path, max_length=200),
        "sections": list(keys),
        "measure": measure,
        "op": op,
        "threshold": threshold,
        "gate": gate,
    }
