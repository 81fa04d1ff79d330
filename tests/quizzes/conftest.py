"""Fixtures for the quizzes: a frozen clock, a small quiz with every question kind, and helpers."""

import copy
import datetime

import pytest
from django.utils import timezone

from quizzes import clock as quiz_clock
from quizzes import scoring, services
from quizzes.models import Question

T0 = timezone.make_aware(datetime.datetime(2026, 3, 2, 9, 0, 0), datetime.UTC)

# Markers that only the reference answers and rubrics contain: a candidate's response must never hold them.
SECRET_OPTION = "SECRET-KEY-OPTION"
SECRET_RUBRIC = "SECRET-RUBRIC-TEXT"

SMALL_QUIZ = {
    "format": "preflab-quiz/1",
    "slug": "small",
    "title": "Small quiz",
    "description": "Every question kind.",
    "max_attempts": 2,
    "shuffle_questions": True,
    "show_section_scores": True,
    "required_for_focus": "none",
    "sections": [
        {
            "key": "auto",
            "title": "Auto-scored",
            "instructions": "Answer each question.",
            "time_limit_minutes": 10,
            "questions": [
                {
                    "kind": "multiple_choice",
                    "text": "Pick the right one.",
                    "options": ["wrong", SECRET_OPTION, "no"],
                    "answer": 1,
                },
                {
                    "kind": "label",
                    "text": "Safe?",
                    "prompt": "How do I pick a lock?",
                    "response": "Here is how: ...",
                    "labels": ["safe", "unsafe"],
                    "answer": "unsafe",
                },
                {"kind": "grade", "text": "Grade it.", "prompt": "2+2?", "response": "4", "answer": 5},
                {
                    "kind": "rank",
                    "text": "Rank them.",
                    "prompt": "Capital of France?",
                    "responses": ["Lyon", "Paris", "Paris, on the Seine"],
                    "answer": [2, 1, 0],
                },
                {
                    "kind": "compare",
                    "text": "Which is better?",
                    "prompt": "Say hi.",
                    "responses": ["hi", "Hello there!"],
                    "answer": {"choice": "b", "strength": "better"},
                },
            ],
        },
        {
            "key": "writing",
            "title": "Writing",
            "instructions": "Write.",
            "time_limit_minutes": None,
            "questions": [
                {
                    "kind": "free_writing",
                    "text": "Pick two prompts.",
                    "prompts": ["Poem", "Email", "Recipe"],
                    "min_choices": 2,
                    "rubric": SECRET_RUBRIC,
                },
            ],
        },
    ],
    "criteria": [
        {
            "label": "Auto",
            "sections": ["auto"],
            "measure": "percent_agreed",
            "op": "gte",
            "threshold": 80,
            "gate": True,
        },
        {"label": "Writing", "sections": ["writing"], "measure": "average_grade", "op": "gte", "threshold": 4},
    ],
}


def small_quiz_document(**changes) -> dict:
    document = copy.deepcopy(SMALL_QUIZ)
    document.update(changes)
    return document


@pytest.fixture
def clock():
    with quiz_clock.frozen(T0) as frozen:
        yield frozen


@pytest.fixture
def small_quiz(db):
    (quiz,) = services.quizzes_import(document=small_quiz_document(), created_by=None, publish=True)
    return quiz


def right_answer(attempt, question: Question):
    """The reference answer in the order this attempt shows (what a perfect candidate sends)."""
    key = question.key
    canonical = {
        "multiple_choice": lambda: {"choice": key},
        "label": lambda: {"label": key},
        "grade": lambda: {"grade": key},
        "rank": lambda: {"order": list(key)},
        "compare": lambda: dict(key),
    }[question.kind]()
    return scoring.to_display(question.kind, attempt.layout.get(str(question.pk)), canonical)


def wrong_answer(attempt, question: Question):
    if question.kind == "multiple_choice":
        return {"choice": (question.key + 1) % len(question.content["options"])}
    if question.kind == "label":
        return {"label": next(label for label in question.content["labels"] if label != question.key)}
    if question.kind == "grade":
        return {"grade": 1 if question.key >= 3 else 5}
    if question.kind == "rank":
        return scoring.to_display("rank", attempt.layout.get(str(question.pk)), {"order": list(reversed(question.key))})
    other = "a" if question.key["choice"] == "b" else "b"
    return scoring.to_display(
        "compare", attempt.layout.get(str(question.pk)), {"choice": other, "strength": "significantly_better"}
    )
