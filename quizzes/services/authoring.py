"""Authoring the selection quizzes: importing the JSON format (and the Llama 2 template), changing a
quiz's settings and thresholds in place, and the quizzes a batch requires of its annotators."""

import json
from pathlib import Path
from typing import Any

from django.db import transaction

from accounts.models import User
from annotation.models import Batch
from config.exceptions import InvalidInput, NotFound

from .. import schema
from ..documents import CONTENT_FIELDS, SCORING_FIELDS, quiz_document
from ..models import BatchRequirement, Criterion, Question, Quiz, Section

LLAMA2_TEMPLATE = Path(__file__).resolve().parent.parent / "fixtures" / "llama2_selection.json"


def _create_quiz(*, data: dict, created_by: User | None, publish: bool) -> Quiz:
    latest = Quiz.objects.filter(slug=data["slug"]).order_by("-version").first()
    quiz = Quiz.objects.create(
        slug=data["slug"],
        version=latest.version + 1 if latest else 1,
        title=data["title"],
        description=data["description"],
        time_limit_minutes=data["time_limit_minutes"],
        max_attempts=data["max_attempts"],
        shuffle_questions=data["shuffle_questions"],
        show_section_scores=data["show_section_scores"],
        required_for_focus=data["required_for_focus"],
        is_published=publish,
        created_by=created_by,
    )
    questions = []
    for s_position, s in enumerate(data["sections"]):
        section = Section.objects.create(
            quiz=quiz,
            position=s_position,
            key=s["key"],
            title=s["title"],
            instructions=s["instructions"],
            time_limit_minutes=s["time_limit_minutes"],
        )
        for q_position, q in enumerate(s["questions"]):
            kind = q["kind"]
            questions.append(
                Question(
                    section=section,
                    position=q_position,
                    kind=kind,
                    text=q["text"],
                    content={name: q[name] for name in CONTENT_FIELDS[kind]},
                    key=q.get("answer"),
                    scoring={name: q[name] for name in SCORING_FIELDS[kind]},
                    rubric=q.get("rubric", ""),
                )
            )
    Question.objects.bulk_create(questions)
    Criterion.objects.bulk_create(
        [
            Criterion(
                quiz=quiz,
                position=i,
                label=c["label"],
                section_keys=c["sections"],
                measure=c["measure"],
                op=c["op"],
                threshold=c["threshold"],
                gate=c["gate"],
            )
            for i, c in enumerate(data["criteria"])
        ]
    )
    return quiz


def _parse_json(source: Any) -> Any:
    if isinstance(source, bytes | bytearray):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("The quiz file must be UTF-8 text.", field="document") from None
    if isinstance(source, str):
        try:
            return json.loads(source)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"The quiz file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                field="document",
            ) from None
    return source


def quizzes_import(*, document: Any, created_by: User | None, publish: bool = False) -> list[Quiz]:
    """Create quizzes from the JSON format (text, bytes or parsed). The whole document validates, or
    nothing is written. A slug that exists gets its next version; older versions stay as they were."""
    parsed = _parse_json(document)
    try:
        normalised = schema.validate_document(parsed)
    except schema.QuizFormatError as exc:
        raise InvalidInput(str(exc), field="document", extra={"errors": exc.errors}) from None
    with transaction.atomic():
        return [_create_quiz(data=data, created_by=created_by, publish=publish) for data in normalised]


def llama2_template_load(*, created_by: User | None, publish: bool = True, if_missing: bool = True) -> list[Quiz]:
    """The four Llama 2 selection tests with the paper's thresholds. With `if_missing`, quizzes whose
    slug already exists are left alone (and returned), so loading twice adds nothing."""
    document = json.loads(LLAMA2_TEMPLATE.read_text(encoding="utf-8"))
    with transaction.atomic():
        if if_missing:
            existing = {q.slug: q for q in Quiz.objects.order_by("slug", "version")}
            missing = [q for q in document["quizzes"] if q["slug"] not in existing]
            created = (
                quizzes_import(document={"quizzes": missing}, created_by=created_by, publish=publish) if missing else []
            )
            by_slug = {q.slug: q for q in created}
            return [
                by_slug.get(q["slug"]) or Quiz.objects.filter(slug=q["slug"]).order_by("-version").first()
                for q in document["quizzes"]
            ]
        return quizzes_import(document=document, created_by=created_by, publish=publish)


SETTING_FIELDS = (
    "title",
    "description",
    "time_limit_minutes",
    "max_attempts",
    "shuffle_questions",
    "show_section_scores",
    "required_for_focus",
)


def quiz_settings_update(
    *,
    quiz: Quiz,
    changes: dict[str, Any],
    criteria: dict[int, dict[str, Any]] | None = None,
    section_time_limits: dict[int, int | None] | None = None,
) -> Quiz:
    """Change a quiz's settings, thresholds and time limits in place (its questions stay as they are;
    change those by importing a new version). Checked with the same rules as an import.

    Thresholds apply to every result decided after the change, including attempts waiting for review.
    """
    unknown = set(changes) - set(SETTING_FIELDS) - {"is_published"}
    if unknown:
        raise InvalidInput(f"Unknown setting(s): {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    document = quiz_document(quiz)
    document.update({k: v for k, v in changes.items() if k != "is_published"})
    criteria_rows = list(quiz.criteria.order_by("position"))
    for criterion_id, values in (criteria or {}).items():
        index = next((i for i, c in enumerate(criteria_rows) if c.pk == criterion_id), None)
        if index is None:
            raise NotFound(f"Criterion {criterion_id} is not part of this quiz.", field="criteria")
        document["criteria"][index].update({k: v for k, v in values.items() if k in ("threshold", "op", "label")})
    sections = list(quiz.sections.order_by("position"))
    for section_id, limit in (section_time_limits or {}).items():
        index = next((i for i, s in enumerate(sections) if s.pk == section_id), None)
        if index is None:
            raise NotFound(f"Section {section_id} is not part of this quiz.", field="sections")
        document["sections"][index]["time_limit_minutes"] = limit
    try:
        (checked,) = schema.validate_document(document)
    except schema.QuizFormatError as exc:
        raise InvalidInput(str(exc), field="settings", extra={"errors": exc.errors}) from None
    with transaction.atomic():
        for name in SETTING_FIELDS:
            setattr(quiz, name, checked[name])
        if "is_published" in changes:
            quiz.is_published = bool(changes["is_published"])
        quiz.save()
        for row, values in zip(criteria_rows, checked["criteria"], strict=True):
            if (row.threshold, row.op, row.label) != (values["threshold"], values["op"], values["label"]):
                row.threshold, row.op, row.label = values["threshold"], values["op"], values["label"]
                row.save(update_fields=["threshold", "op", "label"])
        for row, values in zip(sections, checked["sections"], strict=True):
            if row.time_limit_minutes != values["time_limit_minutes"]:
                row.time_limit_minutes = values["time_limit_minutes"]
                row.save(update_fields=["time_limit_minutes"])
    return quiz


def batch_requirement_add(*, batch: Batch, quiz: Quiz) -> BatchRequirement:
    requirement, _ = BatchRequirement.objects.get_or_create(batch=batch, quiz=quiz)
    return requirement


def batch_requirement_remove(*, batch: Batch, quiz: Quiz) -> int:
    deleted, _ = BatchRequirement.objects.filter(batch=batch, quiz__slug=quiz.slug).delete()
    return deleted
