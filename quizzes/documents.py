"""A quiz as a JSON document (the import/export format of quizzes.schema) and back.

`quiz_document(quiz)` is what export writes; importing it again makes an equal quiz (a new version).
Question fields split three ways in the database: `content` (shown to candidates), `key` (the
reference answer) and `scoring` (agreement tolerances), so that a candidate serializer can take
`content` whole and never touch the rest.
"""

from typing import Any

from . import schema, scoring
from .models import Quiz

CONTENT_FIELDS = {
    scoring.MULTIPLE_CHOICE: ("options",),
    scoring.LABEL: ("prompt", "response", "labels"),
    scoring.GRADE: ("prompt", "response", "scale"),
    scoring.RANK: ("prompt", "responses"),
    scoring.COMPARE: ("prompt", "responses"),
    scoring.FREE_WRITING: ("prompts", "min_choices", "max_choices"),
}
SCORING_FIELDS = {
    scoring.MULTIPLE_CHOICE: (),
    scoring.LABEL: ("tolerance",),
    scoring.GRADE: ("tolerance",),
    scoring.RANK: ("min_tau",),
    scoring.COMPARE: ("strength_tolerance",),
    scoring.FREE_WRITING: (),
}


def question_document(question) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": question.kind, "text": question.text}
    data.update({name: question.content.get(name) for name in CONTENT_FIELDS[question.kind]})
    if question.kind == scoring.FREE_WRITING:
        data["rubric"] = question.rubric
    else:
        data["answer"] = question.key
    data.update({name: question.scoring[name] for name in SCORING_FIELDS[question.kind] if name in question.scoring})
    return data


def quiz_document(quiz: Quiz) -> dict[str, Any]:
    """The quiz in the JSON format, keys and rubrics included (for authors only)."""
    return {
        "format": schema.FORMAT,
        "slug": quiz.slug,
        "version": quiz.version,
        "title": quiz.title,
        "description": quiz.description,
        "time_limit_minutes": quiz.time_limit_minutes,
        "max_attempts": quiz.max_attempts,
        "shuffle_questions": quiz.shuffle_questions,
        "show_section_scores": quiz.show_section_scores,
        "required_for_focus": quiz.required_for_focus,
        "sections": [
            {
                "key": section.key,
                "title": section.title,
                "instructions": section.instructions,
                "time_limit_minutes": section.time_limit_minutes,
                "questions": [question_document(q) for q in section.questions.order_by("position")],
            }
            for section in quiz.sections.order_by("position")
        ],
        "criteria": [
            {
                "label": c.label,
                "sections": list(c.section_keys),
                "measure": c.measure,
                "op": c.op,
                "threshold": c.threshold,
                "gate": c.gate,
            }
            for c in quiz.criteria.order_by("position")
        ],
    }
