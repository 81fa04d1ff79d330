"""The quizzes API: what candidates receive (never a key), autosave and resume, vendors' scope, gating."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from annotation.models import Assignment
from quizzes import services
from quizzes.models import Attempt, AttemptStatus, BatchRequirement, Invitation, Question, Review
from tests.factories import (
    AnnotatorFactory,
    BatchFactory,
    ComparisonFactory,
    UserFactory,
    VendorManagerFactory,
)
from tests.helpers import client_for

from .conftest import SECRET_OPTION, SECRET_RUBRIC, right_answer, small_quiz_document

pytestmark = pytest.mark.django_db


def take_auto_section(api, attempt_id, *, correct=True):
    """Start the open section and answer every question through the API, as the page does."""
    state = api.post(f"/api/attempts/{attempt_id}/start-section/").json()
    attempt = Attempt.objects.get(pk=attempt_id)
    for shown in state["current"]["questions"]:
        question = Question.objects.get(pk=shown["id"])
        value = right_answer(attempt, question) if correct else None
        reply = api.put(f"/api/attempts/{attempt_id}/answers/{question.pk}/", {"value": value}, format="json")
        assert reply.status_code == 200, reply.content
    return state


def test_candidates_never_receive_reference_answers_or_rubrics(small_quiz, clock):
    candidate = AnnotatorFactory()
    api = client_for(candidate)
    bodies = [api.get("/api/quizzes/").content, api.get(f"/api/quizzes/{small_quiz.pk}/").content]
    started = api.post(f"/api/quizzes/{small_quiz.pk}/start/")
    assert started.status_code == 201
    attempt_id = started.json()["id"]
    bodies.append(started.content)
    state = take_auto_section(api, attempt_id)
    bodies.append(json.dumps(state).encode())
    bodies.append(api.get(f"/api/attempts/{attempt_id}/").content)
    submitted = api.post(f"/api/attempts/{attempt_id}/submit-section/", {}, format="json")
    bodies += [submitted.content, api.post(f"/api/attempts/{attempt_id}/start-section/").content]
    bodies.append(api.get("/api/attempts/").content)
    for body in bodies:
        text = body.decode()
        assert SECRET_RUBRIC not in text
        for field in (
            '"key"',
            '"rubric"',
            '"tolerance"',
            '"min_tau"',
            '"strength_tolerance"',
            '"agreed"',
            '"auto_agreed"',
        ):
            assert field not in text, (field, text[:300])
    # The right option's text is shown (it is an option), but nothing says which option is right.
    mc = next(q for q in state["current"]["questions"] if q["kind"] == "multiple_choice")
    assert SECRET_OPTION in mc["options"] and set(mc) == {"id", "kind", "text", "options", "answer"}
    # Researchers get the keys, through the export.
    exported = client_for(UserFactory()).get(f"/api/quizzes/{small_quiz.pk}/export/")
    assert SECRET_RUBRIC in exported.content.decode() and exported["Content-Disposition"].endswith('small-v1.json"')


def test_answers_are_saved_as_given_and_come_back_after_a_reload(small_quiz, clock):
    candidate = AnnotatorFactory()
    api = client_for(candidate)
    attempt_id = api.post(f"/api/quizzes/{small_quiz.pk}/start/").json()["id"]
    state = api.post(f"/api/attempts/{attempt_id}/start-section/").json()
    rank = next(q for q in state["current"]["questions"] if q["kind"] == "rank")
    compare = next(q for q in state["current"]["questions"] if q["kind"] == "compare")
    api.put(f"/api/attempts/{attempt_id}/answers/{rank['id']}/", {"value": {"order": [2, 0]}, "seq": 5}, format="json")
    saved = api.put(
        f"/api/attempts/{attempt_id}/answers/{compare['id']}/", {"value": {"choice": "a"}, "seq": 6}, format="json"
    )
    assert saved.json()["answer"] == {"choice": "a"} and not saved.json()["stale"]
    # "Closing the tab": a new client, a fresh GET, the same answers in the same display order.
    again = client_for(candidate).get(f"/api/attempts/{attempt_id}/").json()
    by_id = {q["id"]: q for q in again["current"]["questions"]}
    assert by_id[rank["id"]]["answer"] == {"order": [2, 0]}
    assert by_id[rank["id"]]["responses"] == rank["responses"]
    assert by_id[compare["id"]]["answer"] == {"choice": "a"}
    assert again["current"]["deadline"] and again["server_now"]
    # Resuming through "start" hands back the same attempt.
    assert client_for(candidate).post(f"/api/quizzes/{small_quiz.pk}/start/").json()["id"] == attempt_id


def test_refusals_are_clear_4xx(small_quiz, clock):
    candidate = AnnotatorFactory()
    api = client_for(candidate)
    attempt_id = api.post(f"/api/quizzes/{small_quiz.pk}/start/").json()["id"]
    state = api.post(f"/api/attempts/{attempt_id}/start-section/").json()
    question_id = state["current"]["questions"][0]["id"]

    other = client_for(AnnotatorFactory())
    other_attempt = other.post(f"/api/quizzes/{small_quiz.pk}/start/").json()["id"]
    stolen = api.put(f"/api/attempts/{other_attempt}/answers/{question_id}/", {"value": None}, format="json")
    assert stolen.status_code == 403 and "another candidate" in stolen.json()["detail"]
    assert other.get(f"/api/attempts/{attempt_id}/").status_code == 404

    bad = api.put(f"/api/attempts/{attempt_id}/answers/{question_id}/", {"value": {"nonsense": 1}}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "value"
    gaps = api.post(f"/api/attempts/{attempt_id}/submit-section/", {}, format="json")
    assert (
        gaps.status_code == 400 and gaps.json()["field"] == "confirm_incomplete" and len(gaps.json()["unanswered"]) == 5
    )

    clock.advance(minutes=11)
    late = api.put(f"/api/attempts/{attempt_id}/answers/{question_id}/", {"value": None}, format="json")
    assert late.status_code == 410 and "Time ran out" in late.json()["detail"]

    api.post(f"/api/quizzes/{small_quiz.pk}/start/")  # attempt 2 (attempt 1 failed its gate)
    beyond = api.post(f"/api/quizzes/{small_quiz.pk}/start/")
    assert beyond.status_code == 200  # the attempt in progress comes back, not a third one
    assert Attempt.objects.filter(candidate=candidate).count() == 2

    assert client_for(VendorManagerFactory()).post(f"/api/quizzes/{small_quiz.pk}/start/").status_code == 403
    assert api.get(f"/api/quizzes/{small_quiz.pk}/export/").status_code == 403
    assert api.get("/api/reviews/").status_code == 403


def test_gating_through_the_api_until_the_quiz_is_passed(small_quiz, clock):
    batch = BatchFactory(focus="safety", name="Safety week")
    ComparisonFactory.create_batch(2, batch=batch)
    open_batch = BatchFactory(name="No requirement")
    ComparisonFactory(batch=open_batch)
    researcher = client_for(UserFactory())
    created = researcher.post("/api/batch-requirements/", {"batch": batch.pk, "quiz": small_quiz.pk}, format="json")
    assert created.status_code == 201 and created.json()["quiz_slug"] == "small"

    candidate = AnnotatorFactory()
    api = client_for(candidate)
    refused = api.post(f"/api/batches/{batch.pk}/next/")
    assert refused.status_code == 403 and "Small quiz" in refused.json()["detail"]
    assert api.post(f"/api/batches/{open_batch.pk}/next/").status_code == 200  # no requirement: open to all
    assert Assignment.objects.filter(annotator=candidate, comparison__batch=batch).count() == 0

    attempt_id = api.post(f"/api/quizzes/{small_quiz.pk}/start/").json()["id"]
    take_auto_section(api, attempt_id)
    api.post(f"/api/attempts/{attempt_id}/submit-section/", {}, format="json")
    state = api.post(f"/api/attempts/{attempt_id}/start-section/").json()
    (writing,) = state["current"]["questions"]
    api.put(
        f"/api/attempts/{attempt_id}/answers/{writing['id']}/",
        {"value": {"responses": {"0": "A poem.", "1": "An email."}}},
        format="json",
    )
    done = api.post(f"/api/attempts/{attempt_id}/submit-section/", {}, format="json").json()
    assert done["status"] == "awaiting_review" and done["result"]["passed"] is None
    assert api.post(f"/api/batches/{batch.pk}/next/").status_code == 403  # not final until graded

    queue = researcher.get("/api/reviews/").json()["results"]
    assert [r["candidate"] for r in queue] == [candidate.pseudonym] * 2  # blind: no username
    assert queue[0]["rubric"] == SECRET_RUBRIC
    for item in queue:
        graded = researcher.post(f"/api/reviews/{item['id']}/grade/", {"score": 4, "comment": "Fine."}, format="json")
        assert graded.status_code == 200
    result = api.get(f"/api/attempts/{attempt_id}/").json()
    assert result["status"] == "passed" and result["result"]["passed"] is True
    assert [s["average_grade"] for s in result["result"]["sections"]] == [None, 4.0]
    leased = api.post(f"/api/batches/{batch.pk}/next/")
    assert leased.status_code == 200 and leased.json()["batch"]["id"] == batch.pk


def test_quiz_required_for_a_focus_gates_every_batch_of_it(clock):
    (quiz,) = services.quizzes_import(
        document=small_quiz_document(required_for_focus="safety"), created_by=None, publish=True
    )
    safety, helpfulness = BatchFactory(focus="safety"), BatchFactory(focus="helpfulness")
    ComparisonFactory(batch=safety)
    ComparisonFactory(batch=helpfulness)
    api = client_for(AnnotatorFactory())
    assert api.post(f"/api/batches/{safety.pk}/next/").status_code == 403
    assert api.post(f"/api/batches/{helpfulness.pk}/next/").status_code == 200
    quiz.is_published = False  # a draft gates nothing by focus
    quiz.save()
    assert api.post(f"/api/batches/{safety.pk}/next/").status_code == 200
    assert BatchRequirement.objects.count() == 0


def test_vendor_managers_see_only_their_own_candidates(small_quiz, clock):
    manager = VendorManagerFactory()
    mine = AnnotatorFactory(vendor=manager.vendor, username="mine")
    theirs = AnnotatorFactory(username="theirs")
    for person in (mine, theirs):
        services.attempt_start(candidate=person, quiz=small_quiz)
    api = client_for(manager)
    people = api.get("/api/candidates/").json()
    assert [p["username"] for p in people] == ["mine"]
    assert people[0]["results"]["small"]["status"] == "in_progress" and not people[0]["qualified"]
    attempts = api.get("/api/attempts/").json()["results"]
    assert [a["candidate"] for a in attempts] == ["mine"]
    assert api.get(f"/api/attempts/{Attempt.objects.get(candidate=theirs).pk}/").status_code == 404
    rates = api.get("/api/candidates/pass-rates/").json()
    assert rates == [
        {
            "quiz": "small",
            "title": "Small quiz",
            "candidates": 1,
            "attempts": 1,
            "final": 0,
            "passed": 0,
            "waiting_for_review": 0,
            "in_progress": 1,
            "pass_rate": None,
        }
    ]
    invited = api.post("/api/invitations/", {"emails": ["new@example.org"]}, format="json")
    assert invited.status_code == 201 and "/invite/" in invited.json()[0]["link"]
    elsewhere = api.post("/api/invitations/", {"emails": ["x@example.org"], "vendor": theirs.vendor_id}, format="json")
    assert elsewhere.status_code == 404
    other_manager = client_for(VendorManagerFactory())
    assert other_manager.get("/api/invitations/").json()["results"] == []
    assert client_for(mine).get("/api/candidates/").status_code == 403


def test_invitations_by_csv_and_sign_up_through_the_api(clock):
    manager = VendorManagerFactory()
    api = client_for(manager)
    upload = SimpleUploadedFile("people.csv", b"email\nada@example.org\nbroken\n", content_type="text/csv")
    refused = api.post("/api/invitations/csv/", {"file": upload}, format="multipart")
    assert refused.status_code == 400 and refused.json()["errors"] == ["entry 2: 'broken' is not an e-mail address"]
    upload = SimpleUploadedFile("people.csv", b"email\nada@example.org\n", content_type="text/csv")
    (invitation,) = api.post("/api/invitations/csv/", {"file": upload}, format="multipart").json()
    token = Invitation.objects.get(pk=invitation["id"]).token
    anonymous = APIClient()
    created = anonymous.post(
        "/api/invitations/accept/", {"token": token, "username": "ada", "password": "a-long-password"}, format="json"
    )
    assert created.status_code == 201 and created.json()["vendor"] == str(manager.vendor)
    again = anonymous.post(
        "/api/invitations/accept/", {"token": token, "username": "ada2", "password": "a-long-password"}, format="json"
    )
    assert again.status_code == 409


def test_import_export_and_settings_through_the_api(clock):
    researcher = client_for(UserFactory())
    broken = small_quiz_document()
    broken["sections"][0]["questions"][1]["answer"] = "perhaps"
    refused = researcher.post("/api/quizzes/import/", {"document": broken}, format="json")
    assert refused.status_code == 400
    assert refused.json()["errors"] == ["sections[0].questions[1].answer: must be one of the labels: safe, unsafe"]
    created = researcher.post(
        "/api/quizzes/import/", {"document": small_quiz_document(), "publish": True}, format="json"
    )
    assert created.status_code == 201
    quiz = created.json()[0]
    detail = researcher.get(f"/api/quizzes/{quiz['id']}/").json()
    rank = next(q for q in detail["sections"][0]["questions"] if q["kind"] == "rank")
    assert "Kendall's tau" in rank["agreement_rule"]
    criterion = detail["criteria"][0]
    patched = researcher.patch(
        f"/api/quizzes/{quiz['id']}/",
        {"max_attempts": 1, "criteria": [{"id": criterion["id"], "threshold": 90}]},
        format="json",
    )
    assert patched.status_code == 200 and patched.json()["criteria"][0]["threshold"] == 90
    upload = SimpleUploadedFile("q.json", researcher.get(f"/api/quizzes/{quiz['id']}/export/").content)
    again = researcher.post("/api/quizzes/import/", {"file": upload}, format="multipart")
    assert again.status_code == 201 and again.json()[0]["version"] == 2
    template = researcher.post("/api/quizzes/llama2-template/")
    assert template.status_code == 201 and len(template.json()) == 4
    assert not any(q["is_published"] for q in template.json())


def test_reviews_api_refuses_bad_grades(small_quiz, clock):
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    services.section_start(candidate=candidate, attempt_id=attempt.pk)
    for question in Question.objects.filter(section__key="auto"):
        services.answer_save(
            candidate=candidate, attempt_id=attempt.pk, question_id=question.pk, value=right_answer(attempt, question)
        )
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    services.section_start(candidate=candidate, attempt_id=attempt.pk)
    writing = Question.objects.get(kind="free_writing")
    services.answer_save(
        candidate=candidate, attempt_id=attempt.pk, question_id=writing.pk, value={"responses": {"0": "a", "1": "b"}}
    )
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    review = Review.objects.first()
    researcher = client_for(UserFactory())
    assert researcher.post(f"/api/reviews/{review.pk}/grade/", {"score": 0}, format="json").status_code == 400
    assert researcher.post("/api/reviews/999999/grade/", {"score": 3}, format="json").status_code == 404
    assert Attempt.objects.get(pk=attempt.pk).status == AttemptStatus.AWAITING_REVIEW


def test_candidates_see_only_pass_or_fail_when_the_quiz_hides_section_scores(clock):
    (quiz,) = services.quizzes_import(
        document=small_quiz_document(show_section_scores=False), created_by=None, publish=True
    )
    api = client_for(AnnotatorFactory())
    attempt_id = api.post(f"/api/quizzes/{quiz.pk}/start/").json()["id"]
    api.post(f"/api/attempts/{attempt_id}/start-section/")
    result = api.post(f"/api/attempts/{attempt_id}/submit-section/", {"confirm_incomplete": True}, format="json")
    assert result.json()["result"] == {"passed": False, "status": "failed"}
