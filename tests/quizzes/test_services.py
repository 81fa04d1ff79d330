"""Attempts under the server's clock, scoring, reviews, qualification and invitations (through the services)."""

import datetime

import pytest

from accounts.models import Role, User
from config.exceptions import Conflict, Gone, InvalidInput, NotAllowed, NotFound
from quizzes import services
from quizzes.models import (
    Answer,
    Attempt,
    AttemptStatus,
    Invitation,
    Question,
    Review,
    ReviewStatus,
    SectionStatus,
)
from tests.factories import AnnotatorFactory, UserFactory, VendorFactory, VendorManagerFactory

from .conftest import right_answer, small_quiz_document, wrong_answer

pytestmark = pytest.mark.django_db


def open_section(candidate, attempt):
    section = services.section_start(candidate=candidate, attempt_id=attempt.pk)
    return section, [Question.objects.get(pk=pk) for pk in section.question_order]


def answer_all(candidate, attempt, questions, answer=right_answer):
    for question in questions:
        services.answer_save(
            candidate=candidate, attempt_id=attempt.pk, question_id=question.pk, value=answer(attempt, question)
        )


def write(candidate, attempt, question, responses):
    return services.answer_save(
        candidate=candidate, attempt_id=attempt.pk, question_id=question.pk, value={"responses": responses}
    )


def test_a_perfect_candidate_passes_after_the_reviewer_grades(small_quiz, clock):
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    section, questions = open_section(candidate, attempt)
    assert section.deadline == clock.now() + datetime.timedelta(minutes=10)
    answer_all(candidate, attempt, questions)
    clock.advance(minutes=3)
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    assert Answer.objects.filter(attempt=attempt, agreed=True).count() == 5

    _, (writing,) = open_section(candidate, attempt)
    write(candidate, attempt, writing, {"0": "Roses are red.", "2": "Boil water, add pasta."})
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.AWAITING_REVIEW and attempt.result["passed"] is None

    reviewer = UserFactory()
    first, second = Review.objects.filter(attempt=attempt).order_by("prompt_index")
    assert (first.prompt, second.prompt) == ("Poem", "Recipe")
    services.review_grade(reviewer=reviewer, review_id=first.pk, score=5, comment="Lovely.")
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.AWAITING_REVIEW  # not final until every part is scored
    services.review_grade(reviewer=reviewer, review_id=second.pk, score=3, comment="Terse.")
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.PASSED and attempt.finished_at == clock.now()
    assert [c["value"] for c in attempt.result["criteria"]] == [100.0, 4.0]


def test_time_limit_is_enforced_by_the_server(small_quiz, clock):
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    _, questions = open_section(candidate, attempt)
    mc = next(q for q in questions if q.kind == "multiple_choice")
    label = next(q for q in questions if q.kind == "label")
    services.answer_save(candidate=candidate, attempt_id=attempt.pk, question_id=mc.pk, value=right_answer(attempt, mc))

    clock.advance(minutes=10, seconds=3)  # past the deadline, inside the grace for a save already on the wire
    services.answer_save(
        candidate=candidate, attempt_id=attempt.pk, question_id=label.pk, value=right_answer(attempt, label)
    )
    clock.advance(seconds=3)  # past the grace: refused, and the section closes as it stands
    with pytest.raises(Gone, match="Time ran out for 'Auto-scored' at 09:10:00 UTC"):
        services.answer_save(
            candidate=candidate, attempt_id=attempt.pk, question_id=mc.pk, value=wrong_answer(attempt, mc)
        )
    attempt.refresh_from_db()
    first = attempt.sections.get(position=0)
    assert first.status == SectionStatus.TIMED_OUT and first.closed_at == first.deadline
    # Everything saved in time stands and is scored; the gate (80%) failed with 2 of 5, so writing is not offered.
    assert Answer.objects.get(attempt=attempt, question=mc).value == {"choice": 1}
    assert attempt.status == AttemptStatus.FAILED
    assert attempt.sections.get(position=1).status == SectionStatus.SKIPPED
    assert attempt.result["sections"][0]["auto_agreed"] == 2
    with pytest.raises(Conflict, match="no open section"):
        services.section_submit(candidate=candidate, attempt_id=attempt.pk)


def test_a_submit_that_arrives_after_the_deadline_is_refused_but_the_saved_answers_stand(small_quiz, clock):
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    _, questions = open_section(candidate, attempt)
    answer_all(candidate, attempt, questions)
    clock.advance(minutes=30)
    with pytest.raises(Gone, match="submitted with the answers saved before the deadline"):
        services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    attempt.refresh_from_db()
    assert attempt.sections.get(position=0).status == SectionStatus.TIMED_OUT
    assert attempt.result["sections"][0]["auto_agreed"] == 5


def test_a_section_that_runs_out_is_closed_even_if_the_candidate_never_returns(small_quiz, clock):
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    _, questions = open_section(candidate, attempt)
    answer_all(candidate, attempt, questions)
    clock.advance(minutes=11)
    assert services.attempts_expire_overdue() == 1
    assert services.attempts_expire_overdue() == 0  # a second sweep changes nothing
    attempt.refresh_from_db()
    assert attempt.sections.get(position=0).status == SectionStatus.TIMED_OUT
    # All five were saved before the deadline: the gate passed and the writing section waits, untimed.
    assert attempt.status == AttemptStatus.IN_PROGRESS
    assert attempt.sections.get(position=1).status == SectionStatus.PENDING


def test_the_quiz_time_limit_covers_sections_without_their_own(clock):
    (quiz,) = services.quizzes_import(
        document=small_quiz_document(time_limit_minutes=15), created_by=None, publish=True
    )
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=quiz).attempt
    _, questions = open_section(candidate, attempt)
    answer_all(candidate, attempt, questions)
    clock.advance(minutes=4)
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    writing_section, (writing,) = open_section(candidate, attempt)
    assert writing_section.deadline == attempt.sections.get(position=0).started_at + datetime.timedelta(minutes=15)
    write(candidate, attempt, writing, {"0": "Typed in time.", "1": "Also in time."})
    clock.advance(minutes=12)
    attempt = services.attempt_refresh(attempt=attempt)
    assert attempt.status == AttemptStatus.AWAITING_REVIEW
    assert list(Review.objects.filter(attempt=attempt).values_list("text", flat=True)) == [
        "Typed in time.",
        "Also in time.",
    ]


def test_a_failed_gate_skips_later_parts_and_nobody_reviews_them(small_quiz, clock):
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    _, questions = open_section(candidate, attempt)
    answer_all(candidate, attempt, questions, answer=wrong_answer)
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.FAILED and attempt.result["gate_failed"]
    assert "0% agreed" in attempt.result["reasons"][0]
    with pytest.raises(Conflict, match="no section left"):
        services.section_start(candidate=candidate, attempt_id=attempt.pk)


def test_failing_the_auto_part_makes_pending_reviews_unnecessary(clock):
    document = small_quiz_document()
    document["criteria"][0]["gate"] = False
    (quiz,) = services.quizzes_import(document=document, created_by=None, publish=True)
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=quiz).attempt
    _, questions = open_section(candidate, attempt)
    answer_all(candidate, attempt, questions, answer=wrong_answer)
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    _, (writing,) = open_section(candidate, attempt)
    write(candidate, attempt, writing, {"0": "a", "1": "b"})
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.FAILED
    assert set(Review.objects.filter(attempt=attempt).values_list("status", flat=True)) == {ReviewStatus.NOT_NEEDED}
    with pytest.raises(Conflict, match="already final"):
        services.review_grade(reviewer=UserFactory(), review_id=Review.objects.first().pk, score=5)


def test_autosave_keeps_the_latest_and_ignores_late_arrivals(small_quiz, clock):
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    services.attempt_start(candidate=candidate, quiz=small_quiz)  # resuming hands back the same attempt
    open_section(candidate, attempt)
    _, (writing,) = (None, [Question.objects.get(kind="free_writing")])
    mc = Question.objects.get(kind="multiple_choice")
    services.answer_save(candidate=candidate, attempt_id=attempt.pk, question_id=mc.pk, value={"choice": 2}, seq=20)
    stale = services.answer_save(
        candidate=candidate, attempt_id=attempt.pk, question_id=mc.pk, value={"choice": 0}, seq=10
    )
    assert stale.stale and Answer.objects.get(question=mc).value == {"choice": 2}
    services.answer_save(candidate=candidate, attempt_id=attempt.pk, question_id=mc.pk, value=None, seq=30)
    assert Answer.objects.get(question=mc).value is None
    with pytest.raises(Conflict, match="has not started yet"):
        write(candidate, attempt, writing, {"0": "too early"})


def test_answers_that_do_not_belong_are_refused(small_quiz, clock):
    candidate, other = AnnotatorFactory(), AnnotatorFactory()
    mine = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    theirs = services.attempt_start(candidate=other, quiz=small_quiz).attempt
    (elsewhere,) = services.quizzes_import(document=small_quiz_document(slug="other"), created_by=None, publish=True)
    _, questions = open_section(candidate, mine)
    foreign = Question.objects.filter(section__quiz=elsewhere).first()
    with pytest.raises(InvalidInput, match=f"not part of attempt {mine.pk}"):
        services.answer_save(candidate=candidate, attempt_id=mine.pk, question_id=foreign.pk, value={"choice": 0})
    with pytest.raises(NotAllowed, match="another candidate"):
        services.answer_save(candidate=candidate, attempt_id=theirs.pk, question_id=questions[0].pk, value=None)
    with pytest.raises(NotFound):
        services.answer_save(candidate=candidate, attempt_id=999_999, question_id=questions[0].pk, value=None)
    mc = next(q for q in questions if q.kind == "multiple_choice")
    with pytest.raises(InvalidInput, match="between 0 and 2"):
        services.answer_save(candidate=candidate, attempt_id=mine.pk, question_id=mc.pk, value={"choice": 3})


def test_submitting_with_gaps_needs_confirmation(small_quiz, clock):
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    _, questions = open_section(candidate, attempt)
    answer_all(candidate, attempt, questions[:3])
    with pytest.raises(InvalidInput, match="2 questions are not fully answered") as refused:
        services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    assert len(refused.value.extra["unanswered"]) == 2
    answer_all(candidate, attempt, questions[3:])
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    _, (writing,) = open_section(candidate, attempt)
    write(candidate, attempt, writing, {"1": "Only one."})
    with pytest.raises(InvalidInput, match="You wrote 1 of the 2 responses required"):
        services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    services.section_submit(candidate=candidate, attempt_id=attempt.pk, confirm_incomplete=True)
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.FAILED  # the minimum of two was not met: no review needed
    assert "wrote 1 of the required 2" in " ".join(attempt.result["reasons"])


def test_attempts_are_limited_and_every_attempt_is_kept(small_quiz, clock):
    candidate = AnnotatorFactory()
    for number in (1, 2):
        attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
        assert attempt.number == number
        _, questions = open_section(candidate, attempt)
        answer_all(candidate, attempt, questions, answer=wrong_answer)
        services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    with pytest.raises(Conflict, match="used 2 of the 2 attempts"):
        services.attempt_start(candidate=candidate, quiz=small_quiz)
    assert Attempt.objects.filter(candidate=candidate).count() == 2
    # A new version of the quiz does not reset the count: attempts are counted per quiz, not per version.
    (v2,) = services.quizzes_import(document=small_quiz_document(), created_by=None, publish=True)
    with pytest.raises(Conflict, match="used 2 of the 2"):
        services.attempt_start(candidate=candidate, quiz=v2)


def test_no_new_attempt_while_one_waits_for_review_or_after_a_pass(small_quiz, clock):
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    _, questions = open_section(candidate, attempt)
    answer_all(candidate, attempt, questions)
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    _, (writing,) = open_section(candidate, attempt)
    write(candidate, attempt, writing, {"0": "a", "1": "b"})
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    with pytest.raises(Conflict, match="waiting for reviewers"):
        services.attempt_start(candidate=candidate, quiz=small_quiz)
    for review in Review.objects.filter(attempt=attempt):
        services.review_grade(reviewer=UserFactory(), review_id=review.pk, score=4)
    with pytest.raises(Conflict, match="already passed"):
        services.attempt_start(candidate=candidate, quiz=small_quiz)


def test_only_annotators_take_quizzes_and_only_researchers_grade(small_quiz):
    with pytest.raises(NotAllowed):
        services.attempt_start(candidate=VendorManagerFactory(), quiz=small_quiz)
    small_quiz.is_published = False
    small_quiz.save()
    with pytest.raises(NotFound, match="not open"):
        services.attempt_start(candidate=AnnotatorFactory(), quiz=small_quiz)
    with pytest.raises(NotAllowed):
        services.review_grade(reviewer=AnnotatorFactory(), review_id=1, score=3)
    with pytest.raises(InvalidInput, match="1 to 5"):
        services.review_grade(reviewer=UserFactory(), review_id=1, score=6)


def test_a_second_reviewer_cannot_overwrite_a_grade(small_quiz, clock):
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=small_quiz).attempt
    _, questions = open_section(candidate, attempt)
    answer_all(candidate, attempt, questions)
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    _, (writing,) = open_section(candidate, attempt)
    write(candidate, attempt, writing, {"0": "a", "1": "b"})
    services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    review = Review.objects.filter(attempt=attempt).first()
    first, second = UserFactory(), UserFactory()
    services.review_grade(reviewer=first, review_id=review.pk, score=2)
    services.review_grade(reviewer=first, review_id=review.pk, score=3)  # the same reviewer may correct it
    with pytest.raises(Conflict, match="Another reviewer already graded this response 3/5"):
        services.review_grade(reviewer=second, review_id=review.pk, score=5)


def test_settings_and_thresholds_are_edited_with_the_import_rules(small_quiz):
    auto, _ = small_quiz.criteria.order_by("position")
    first_section = small_quiz.sections.get(position=0)
    services.quiz_settings_update(
        quiz=small_quiz,
        changes={"max_attempts": 3, "required_for_focus": "safety"},
        criteria={auto.pk: {"threshold": 60, "op": "gt"}},
        section_time_limits={first_section.pk: 25},
    )
    auto.refresh_from_db()
    first_section.refresh_from_db()
    small_quiz.refresh_from_db()
    assert (auto.threshold, auto.op, first_section.time_limit_minutes) == (60, "gt", 25)
    assert (small_quiz.max_attempts, small_quiz.required_for_focus) == (3, "safety")
    with pytest.raises(InvalidInput) as refused:
        services.quiz_settings_update(quiz=small_quiz, changes={}, criteria={auto.pk: {"threshold": 150}})
    assert refused.value.extra["errors"] == ["criteria[0].threshold: must be between 0 and 100"]
    with pytest.raises(InvalidInput, match="Unknown setting"):
        services.quiz_settings_update(quiz=small_quiz, changes={"colour": "red"})


def test_a_recorded_qualification_counts_as_a_pass_once(small_quiz):
    annotator, researcher = AnnotatorFactory(), UserFactory()
    first = services.qualification_grant(quiz=small_quiz, annotator=annotator, granted_by=researcher)
    again = services.qualification_grant(quiz=small_quiz, annotator=annotator, granted_by=researcher)
    assert first.pk == again.pk and first.status == AttemptStatus.PASSED and first.granted_by == researcher
    with pytest.raises(NotAllowed):
        services.qualification_grant(quiz=small_quiz, annotator=annotator, granted_by=annotator)


# ------------------------------------------------------------------ invitations


def test_vendor_managers_invite_and_candidates_sign_up(clock):
    manager = VendorManagerFactory()
    invitations = services.invitations_create(
        invited_by=manager, vendor=manager.vendor, emails=["Ada@example.org", "ada@example.org", " grace@example.org "]
    )
    assert [i.email for i in invitations] == ["Ada@example.org", "grace@example.org"]
    again = services.invitations_create(invited_by=manager, vendor=manager.vendor, emails=["grace@example.org"])
    assert again[0].pk == invitations[1].pk  # a live invitation keeps its link

    user = services.invitation_accept(token=invitations[0].token, username="ada", password="a-long-password")
    assert (user.role, user.vendor, user.email) == (Role.ANNOTATOR, manager.vendor, "Ada@example.org")
    assert user.check_password("a-long-password")
    with pytest.raises(Conflict, match="already used"):
        services.invitation_accept(token=invitations[0].token, username="ada2", password="a-long-password")
    with pytest.raises(Conflict, match="taken"):
        services.invitation_accept(token=invitations[1].token, username="ADA", password="a-long-password")
    with pytest.raises(InvalidInput, match="too short"):
        services.invitation_accept(token=invitations[1].token, username="grace", password="short")
    clock.advance(days=15)
    with pytest.raises(Gone, match="expired"):
        services.invitation_accept(token=invitations[1].token, username="grace", password="a-long-password")
    with pytest.raises(NotFound):
        services.invitation_accept(token="nope", username="x", password="a-long-password")
    with pytest.raises(InvalidInput, match="already has a Preflab account"):
        services.invitations_create(invited_by=manager, vendor=manager.vendor, emails=["ADA@example.org"])


def test_bad_addresses_refuse_the_whole_batch_and_other_vendors_are_off_limits():
    manager = VendorManagerFactory()
    with pytest.raises(InvalidInput, match="entry 2: 'not-an-email' is not an e-mail address") as refused:
        services.invitations_create(
            invited_by=manager, vendor=manager.vendor, emails=["ok@example.org", "not-an-email"]
        )
    assert refused.value.extra["errors"] == ["entry 2: 'not-an-email' is not an e-mail address"]
    assert Invitation.objects.count() == 0
    with pytest.raises(NotAllowed):
        services.invitations_create(invited_by=manager, vendor=VendorFactory(), emails=["x@example.org"])
    with pytest.raises(NotAllowed):
        services.invitations_create(
            invited_by=AnnotatorFactory(vendor=manager.vendor), vendor=manager.vendor, emails=["x@example.org"]
        )


def test_csv_invitations_read_an_email_column_or_the_first_column():
    manager = VendorManagerFactory()
    with_header = b"name,email\nAda,ada@example.org\nGrace,grace@example.org\n\n"
    assert [
        i.email for i in services.invitations_from_csv(invited_by=manager, vendor=manager.vendor, source=with_header)
    ] == [
        "ada@example.org",
        "grace@example.org",
    ]
    bare = "\ufefflin@example.org\nkay@example.org\n"
    assert len(services.invitations_from_csv(invited_by=manager, vendor=manager.vendor, source=bare)) == 2
    with pytest.raises(InvalidInput, match="no e-mail addresses"):
        services.invitations_from_csv(invited_by=manager, vendor=manager.vendor, source=b"\n\n")
    assert User.objects.filter(role=Role.ANNOTATOR).count() == 0
