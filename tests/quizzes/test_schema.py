"""The quiz JSON format: the Llama 2 template, import validation with paths, export round trip."""

import json

import pytest

from config.exceptions import InvalidInput
from quizzes import schema, services
from quizzes.documents import quiz_document
from quizzes.models import Quiz

from .conftest import small_quiz_document

pytestmark = pytest.mark.django_db


def test_the_llama2_template_has_the_papers_structure_and_thresholds():
    quizzes = {q.slug: q for q in services.llama2_template_load(created_by=None, publish=True)}
    grammar = quizzes["llama2-grammar-writing"]
    assert grammar.time_limit_minutes == 50 and grammar.sections.count() == 3
    part_one, parts_two_three = grammar.criteria.order_by("position")
    assert (part_one.measure, part_one.op, part_one.threshold, part_one.gate) == ("percent_agreed", "gte", 90, True)
    assert (parts_two_three.measure, parts_two_three.threshold, parts_two_three.section_keys) == (
        "average_grade",
        4,
        ["part-2-reading", "part-3-style"],
    )

    sensitive = quizzes["llama2-sensitive-topics"]
    questions = [q for s in sensitive.sections.all() for q in s.questions.all()]
    assert len(questions) == 42
    assert sum(q.kind == "free_writing" for q in questions) == 2
    assert [(c.measure, c.threshold) for c in sensitive.criteria.order_by("position")] == [
        ("percent_agreed", 80),
        ("average_grade", 4),
    ]
    assert sensitive.required_for_focus == "safety"

    quality = quizzes["llama2-quality-assessment"]
    auto = [q for s in quality.sections.all() for q in s.questions.all() if q.is_auto_scored]
    assert len(auto) == 31
    (rule,) = quality.criteria.all()
    assert (rule.measure, rule.op, rule.threshold) == ("count_agreed", "gt", 26)

    writing = quizzes["llama2-answer-writing"]
    (question,) = writing.sections.get().questions.all()
    assert len(question.content["prompts"]) == 18 and question.content["min_choices"] == 6
    (rule,) = writing.criteria.all()
    assert (rule.measure, rule.op, rule.threshold) == ("average_grade", "gt", 4)

    again = services.llama2_template_load(created_by=None, publish=True)
    assert [q.pk for q in again] == [q.pk for q in quizzes.values()]  # loading twice adds nothing


def test_export_then_import_gives_the_same_quiz_as_a_new_version(small_quiz):
    exported = quiz_document(small_quiz)
    (copy,) = services.quizzes_import(document=json.dumps(exported), created_by=None)
    assert (copy.slug, copy.version, copy.is_published) == ("small", 2, False)
    again = quiz_document(copy)
    assert {**again, "version": 1} == exported
    assert exported == {**schema.validate_document(small_quiz_document())[0], "format": schema.FORMAT, "version": 1}


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d["sections"][0]["questions"][0].update(answer=7), "sections[0].questions[0].answer"),
        (lambda d: d["sections"][0]["questions"][1].update(answer="maybe"), "sections[0].questions[1].answer"),
        (lambda d: d["sections"][0]["questions"][3].update(answer=[0, 0, 1]), "sections[0].questions[3].answer"),
        (lambda d: d["sections"][0]["questions"][4].update(answer={"choice": "c"}), "sections[0].questions[4].answer"),
        (lambda d: d["sections"][0]["questions"][2].pop("answer"), "sections[0].questions[2].answer"),
        (lambda d: d["sections"][1]["questions"][0].update(min_choices=9), "sections[1].questions[0].min_choices"),
        (lambda d: d["sections"][0]["questions"][0].update(colour="red"), "sections[0].questions[0].colour"),
        (lambda d: d["sections"][0]["questions"][0].update(kind="essay"), "sections[0].questions[0].kind"),
        (lambda d: d["sections"][1].update(key="auto"), "sections[1].key"),
        (lambda d: d["sections"][0].update(time_limit_minutes=0), "sections[0].time_limit_minutes"),
        (lambda d: d["criteria"][0].update(sections=["nope"]), "criteria[0].sections[0]"),
        (lambda d: d["criteria"][1].update(gate=True), "criteria[1].gate"),
        (lambda d: d["criteria"][0].update(threshold=120), "criteria[0].threshold"),
        (lambda d: d["criteria"][1].update(sections=["auto"]), "criteria[1].sections"),
        (lambda d: d.update(required_for_focus="fun"), "required_for_focus"),
        (lambda d: d.update(slug="no spaces"), "slug"),
    ],
)
def test_a_malformed_import_is_refused_whole_with_the_path(mutate, path):
    document = small_quiz_document()
    mutate(document)
    with pytest.raises(InvalidInput) as refused:
        services.quizzes_import(document=document, created_by=None)
    assert any(error.startswith(f"{path}:") for error in refused.value.extra["errors"]), refused.value.extra
    assert Quiz.objects.count() == 0


def test_every_error_is_listed_and_bundles_prefix_the_quiz():
    broken = small_quiz_document()
    broken["sections"][0]["questions"][0]["answer"] = 9
    broken["sections"][0]["questions"][2]["answer"] = 0
    with pytest.raises(InvalidInput) as refused:
        services.quizzes_import(document={"quizzes": [small_quiz_document(slug="fine"), broken]}, created_by=None)
    errors = refused.value.extra["errors"]
    assert [e.split(":")[0] for e in errors] == [
        "quizzes[1].sections[0].questions[0].answer",
        "quizzes[1].sections[0].questions[2].answer",
    ]
    assert "2 errors" in refused.value.detail
    assert Quiz.objects.count() == 0


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON: Expecting property name"),
        (b"\xff\xfe", "UTF-8"),
        ([1, 2], "JSON object"),
        ({"quizzes": []}, "non-empty list"),
        ({"quizzes": [small_quiz_document(), small_quiz_document()]}, "used twice"),
    ],
)
def test_documents_that_are_not_quizzes_are_refused(document, message):
    with pytest.raises(InvalidInput, match=message):
        services.quizzes_import(document=document, created_by=None)
