"""The server-rendered quiz pages through Django's test client: roles, forms and their refusals."""

import json

import pytest
from django.test import Client

from accounts.models import User
from quizzes import services
from quizzes.models import Attempt, Invitation, Quiz, Review
from quizzes.tasks import expire_overdue_sections
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory, UserFactory, VendorManagerFactory
from tests.helpers import page_client_for

from .conftest import SECRET_RUBRIC, right_answer, small_quiz_document

pytestmark = pytest.mark.django_db


def test_pages_refuse_other_roles(small_quiz):
    candidate, manager, researcher = AnnotatorFactory(), VendorManagerFactory(), UserFactory()
    assert page_client_for(candidate).get("/quizzes/manage/").status_code == 403
    assert page_client_for(candidate).get("/quizzes/reviews/").status_code == 403
    assert page_client_for(candidate).get("/vendor/candidates/").status_code == 403
    assert page_client_for(manager).get("/quizzes/").status_code == 403
    assert page_client_for(researcher).get("/quizzes/").status_code == 403
    attempt = services.attempt_start(candidate=AnnotatorFactory(), quiz=small_quiz).attempt
    assert page_client_for(candidate).get(f"/quizzes/attempts/{attempt.pk}/").status_code == 404
    assert Client().get("/quizzes/").status_code == 302  # to the log-in page


def test_candidate_lists_starts_and_resumes(small_quiz):
    batch = BatchFactory(name="Gated batch")
    services.batch_requirement_add(batch=batch, quiz=small_quiz)
    candidate = AnnotatorFactory()
    client = page_client_for(candidate)
    page = client.get("/quizzes/").content.decode()
    assert "Small quiz" in page and "Needed for: Gated batch" in page and "2 of 2 attempts left" in page
    started = client.post(f"/quizzes/{small_quiz.pk}/start/")
    attempt = Attempt.objects.get(candidate=candidate)
    assert started.status_code == 302 and started["Location"] == f"/quizzes/attempts/{attempt.pk}/"
    shell = client.get(started["Location"]).content.decode()
    assert f'data-attempt="{attempt.pk}"' in shell and SECRET_RUBRIC not in shell
    assert "Continue" in client.get("/quizzes/").content.decode()
    assert client.post(f"/quizzes/{small_quiz.pk}/start/")["Location"] == f"/quizzes/attempts/{attempt.pk}/"


def test_researchers_import_edit_and_export(clock):
    client = page_client_for(UserFactory())
    broken = small_quiz_document()
    broken["sections"][0]["questions"][0]["answer"] = 9
    page = client.post("/quizzes/manage/", {"action": "import", "document": json.dumps(broken)}, follow=True)
    assert "sections[0].questions[0].answer: must be the position of the right option, 0 to 2" in page.content.decode()
    assert Quiz.objects.count() == 0
    client.post("/quizzes/manage/", {"action": "import", "document": json.dumps(small_quiz_document())})
    quiz = Quiz.objects.get()
    detail = client.get(f"/quizzes/manage/{quiz.pk}/").content.decode()
    assert "Kendall&#x27;s tau" in detail and "at most" not in detail  # 3 answers: only the exact order
    assert "only the exact reference order agrees" in detail

    auto, written = quiz.criteria.order_by("position")
    sections = list(quiz.sections.order_by("position"))
    form = {
        "action": "settings",
        "title": "Small quiz",
        "description": "",
        "max_attempts": "3",
        "time_limit_minutes": "",
        "required_for_focus": "safety",
        "is_published": "on",
        f"threshold-{auto.pk}": "75",
        f"op-{auto.pk}": "gt",
        f"threshold-{written.pk}": "4.5",
        f"op-{written.pk}": "gte",
        f"limit-{sections[0].pk}": "12",
        f"limit-{sections[1].pk}": "",
    }
    client.post(f"/quizzes/manage/{quiz.pk}/", form)
    auto.refresh_from_db()
    quiz.refresh_from_db()
    assert (auto.threshold, auto.op, quiz.max_attempts, quiz.is_published) == (75, "gt", 3, True)
    bad = client.post(f"/quizzes/manage/{quiz.pk}/", {**form, f"threshold-{written.pk}": "7"}, follow=True)
    assert "criteria[1].threshold: must be between 0 and 5" in bad.content.decode()

    exported = client.get(f"/quizzes/manage/{quiz.pk}/export/")
    document = json.loads(exported.content)
    assert document["criteria"][0]["threshold"] == 75 and document["sections"][1]["questions"][0]["rubric"]
    document["sections"][0]["questions"][0]["text"] = "Pick the right one, please."
    saved = client.post(f"/quizzes/manage/{quiz.pk}/json/", {"document": json.dumps(document)})
    new = Quiz.objects.get(version=2)
    assert saved["Location"] == f"/quizzes/manage/{new.pk}/" and not new.is_published
    document["sections"][0]["questions"][0]["kind"] = "essay"
    refused = client.post(f"/quizzes/manage/{quiz.pk}/json/", {"document": json.dumps(document)})
    assert "sections[0].questions[0].kind: must be one of" in refused.content.decode()
    client.post("/quizzes/manage/", {"action": "template"})
    assert Quiz.objects.filter(slug__startswith="llama2-").count() == 4


def test_reviewers_grade_through_the_queue_page(small_quiz, clock):
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    for _ in range(2):
        section = services.section_start(candidate=candidate, attempt_id=attempt.pk)
        for question in small_quiz.sections.get(pk=section.section_id).questions.all():
            value = (
                {"responses": {"0": "x", "1": "y"}}
                if question.kind == "free_writing"
                else right_answer(attempt, question)
            )
            services.answer_save(candidate=candidate, attempt_id=attempt.pk, question_id=question.pk, value=value)
        services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    client = page_client_for(UserFactory())
    page = client.get("/quizzes/reviews/").content.decode()
    assert "2 written answers waiting" in page and candidate.pseudonym in page and candidate.username not in page
    first, second = Review.objects.order_by("id")
    client.post("/quizzes/reviews/", {"review": first.pk, "score": "5", "comment": "Good."})
    refused = client.post("/quizzes/reviews/", {"review": second.pk, "score": "9"}, follow=True)
    assert "1 to 5" in refused.content.decode()
    client.post("/quizzes/reviews/", {"review": second.pk, "score": "4"})
    assert Attempt.objects.get(pk=attempt.pk).status == "passed"
    assert "Nothing to review" in client.get("/quizzes/reviews/").content.decode()


def test_vendor_pages_invite_and_show_only_their_people(small_quiz, clock):
    manager = VendorManagerFactory()
    AnnotatorFactory(vendor=manager.vendor, username="ours")
    AnnotatorFactory(username="someone-elses")
    client = page_client_for(manager)
    page = client.get("/vendor/candidates/").content.decode()
    assert "ours" in page and "someone-elses" not in page
    refused = client.post("/vendor/candidates/", {"emails": "good@example.org, nope"}, follow=True)
    assert "entry 2: &#x27;nope&#x27; is not an e-mail address" in refused.content.decode()
    assert Invitation.objects.count() == 0
    client.post("/vendor/candidates/", {"emails": "good@example.org\nalso@example.org"})
    invitations = Invitation.objects.filter(vendor=manager.vendor)
    assert invitations.count() == 2
    exported = client.get("/vendor/invitations.csv").content.decode()
    assert exported.splitlines()[0] == "email,vendor,status,link,expires_at"
    assert all(f"/invite/{i.token}/" in exported for i in invitations)
    other = page_client_for(VendorManagerFactory())
    assert "good@example.org" not in other.get("/vendor/candidates/").content.decode()
    assert "good@example.org" not in other.get("/vendor/invitations.csv").content.decode()
    researcher_page = page_client_for(UserFactory()).get("/vendor/candidates/").content.decode()
    assert "ours" in researcher_page and "someone-elses" in researcher_page


def test_invitation_link_signs_the_candidate_up(clock):
    manager = VendorManagerFactory()
    (invitation,) = services.invitations_create(invited_by=manager, vendor=manager.vendor, emails=["ada@example.org"])
    client = Client()
    page = client.get(f"/invite/{invitation.token}/").content.decode()
    assert "ada@example.org" in page and str(manager.vendor) in page
    differ = client.post(
        f"/invite/{invitation.token}/", {"username": "ada", "password": "long-password", "password2": "other"}
    )
    assert "two passwords differ" in differ.content.decode()
    done = client.post(
        f"/invite/{invitation.token}/",
        {"username": "ada", "password": "long-password", "password2": "long-password"},
    )
    assert done.status_code == 302 and done["Location"] == "/quizzes/"
    assert client.get("/quizzes/").status_code == 200  # logged in as the new candidate
    assert User.objects.get(username="ada").vendor == manager.vendor
    (late,) = services.invitations_create(invited_by=manager, vendor=manager.vendor, emails=["late@example.org"])
    clock.advance(days=30)
    assert Client().get(f"/invite/{late.token}/").status_code == 410
    assert Client().get("/invite/not-a-token/").status_code == 404


def test_commands_and_the_sweep_task(tmp_path, small_quiz, clock):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("load_llama2_quizzes", "--publish", stdout=out)
    assert "llama2-sensitive-topics v1" in out.getvalue()
    out = StringIO()
    call_command("export_quiz", "small", stdout=out)
    path = tmp_path / "small.json"
    path.write_text(out.getvalue())
    call_command("import_quiz", str(path), stdout=StringIO())
    assert Quiz.objects.filter(slug="small").count() == 2
    path.write_text("{}")
    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("import_quiz", str(path))

    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    services.section_start(candidate=candidate, attempt_id=attempt.pk)
    clock.advance(hours=1)
    assert expire_overdue_sections.delay().get() == 1


def test_gated_batches_are_refused_on_the_pages_too(small_quiz, clock):
    gated = BatchFactory(name="Gated")
    BatchFactory(name="Open to all")
    ComparisonFactory(batch=gated)
    services.batch_requirement_add(batch=gated, quiz=small_quiz)
    candidate = AnnotatorFactory()
    client = page_client_for(candidate)
    index = client.get("/annotate/").content.decode()
    assert "Open to all" in index and "Gated" not in index
    refused = client.get(f"/annotate/{gated.pk}/")
    assert refused.status_code == 403 and "Small quiz" in refused.content.decode()
    services.qualification_grant(quiz=small_quiz, annotator=candidate, granted_by=UserFactory())
    assert client.get(f"/annotate/{gated.pk}/").status_code == 200


def test_the_admin_lists_and_exports_quizzes(small_quiz):
    admin = UserFactory(is_staff=True, is_superuser=True)
    client = page_client_for(admin)
    assert client.get("/admin/quizzes/quiz/").status_code == 200
    assert (
        client.get(f"/admin/quizzes/question/{small_quiz.sections.first().questions.first().pk}/change/").status_code
        == 200
    )
    exported = client.post("/admin/quizzes/quiz/", {"action": "export_json", "_selected_action": [small_quiz.pk]})
    assert json.loads(exported.content)["quizzes"][0]["slug"] == "small"
