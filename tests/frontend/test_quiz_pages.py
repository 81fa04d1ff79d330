"""The quiz pages in Debian's Chromium: a candidate takes a timed section whose time runs out on the
server (a frozen, moved clock, no sleeping through it), and a reviewer grades written answers."""

import pytest

from quizzes import clock as quiz_clock
from quizzes import services
from quizzes.models import Answer, Attempt, AttemptStatus, Question, Review, SectionStatus
from tests.factories import AnnotatorFactory, UserFactory
from tests.helpers import log_in
from tests.quizzes.conftest import SECRET_RUBRIC, right_answer, small_quiz_document

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_candidate_takes_a_timed_section_and_the_server_closes_it(page, live_server):
    (quiz,) = services.quizzes_import(
        document=small_quiz_document(shuffle_questions=False), created_by=None, publish=True
    )
    candidate = AnnotatorFactory(username="cand")
    with quiz_clock.frozen() as clock:
        log_in(page, live_server, "cand")
        page.goto(f"{live_server.url}/quizzes/")
        page.click("text=Start")
        page.wait_for_selector("#intro:not([hidden])")
        assert "10 minutes" in page.inner_text("#intro-facts")
        page.keyboard.press("Enter")
        page.wait_for_selector("#work:not([hidden])")
        assert page.inner_text("#countdown").endswith("left in this section")
        assert page.inner_text("#countdown").startswith(("10:00", "9:5"))
        assert SECRET_RUBRIC not in page.content()

        page.keyboard.press("2")  # question 1 (multiple choice): the second option, the right one
        page.wait_for_function("document.getElementById('save-state').textContent === 'All answers saved'")
        page.reload()  # a closed tab loses nothing: the answer comes back from the server
        page.wait_for_selector("#work:not([hidden])")
        assert page.get_attribute(".choice:nth-child(2)", "aria-checked") == "true"
        assert "1 answered" in page.inner_text("#progress-text")

        page.keyboard.press("ArrowRight")
        assert "Safe?" in page.inner_text("#question")
        page.context.set_offline(True)  # a lost connection: the answer waits on this device
        page.keyboard.press("2")
        page.wait_for_function("document.getElementById('save-state').textContent.startsWith('Offline')")
        page.context.set_offline(False)
        page.wait_for_function("document.getElementById('save-state').textContent === 'All answers saved'")

        page.keyboard.press("ArrowRight")
        assert "Grade it." in page.inner_text("#question")
        clock.advance(minutes=10, seconds=6)  # past the deadline and its grace, on the server's clock
        page.keyboard.press("5")  # too late: refused, and the section was submitted as it stood
        page.wait_for_selector("#intro:not([hidden]), #result:not([hidden])")
        assert "Time ran out" in page.inner_text("#status")

    attempt = Attempt.objects.get(candidate=candidate)
    assert attempt.sections.get(position=0).status == SectionStatus.TIMED_OUT
    mc = Question.objects.get(section__quiz=quiz, kind="multiple_choice")
    label = Question.objects.get(section__quiz=quiz, kind="label")
    saved = Answer.objects.filter(attempt=attempt).order_by("question_id").values_list("question_id", "value")
    assert list(saved) == [(mc.pk, {"choice": 1}), (label.pk, {"label": "unsafe"})]
    # Two of five agreed is below the 80% gate: the written part is not offered and the result shows it.
    assert attempt.status == AttemptStatus.FAILED
    page.wait_for_selector("#result:not([hidden])")
    assert "Not passed" in page.inner_text("#result")


def test_reviewer_grades_written_answers_and_the_candidate_passes(page, live_server):
    (quiz,) = services.quizzes_import(document=small_quiz_document(), created_by=None, publish=True)
    candidate = AnnotatorFactory()
    attempt = services.attempt_start(candidate=candidate, quiz=quiz).attempt
    for _ in range(2):
        section = services.section_start(candidate=candidate, attempt_id=attempt.pk)
        for question in Question.objects.filter(pk__in=section.question_order):
            value = (
                {"responses": {"0": "Roses are red,\nviolets are blue.", "1": "Dear team, lunch on Friday?"}}
                if question.kind == "free_writing"
                else right_answer(attempt, question)
            )
            services.answer_save(candidate=candidate, attempt_id=attempt.pk, question_id=question.pk, value=value)
        services.section_submit(candidate=candidate, attempt_id=attempt.pk)
    UserFactory(username="rev")

    log_in(page, live_server, "rev")
    page.goto(f"{live_server.url}/quizzes/reviews/")
    assert "2 written answers waiting" in page.inner_text("#pending-count")
    assert "Roses are red" in page.inner_text("#review-text")
    assert SECRET_RUBRIC in page.inner_text(".rubric")
    assert candidate.username not in page.content()  # blind review: a pseudonym only
    page.keyboard.press("4")
    page.keyboard.press("c")
    page.keyboard.type("Follows the prompt; rhymes.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Grade saved.")
    assert "Dear team" in page.inner_text("#review-text")
    page.keyboard.press("5")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Nothing to review")

    grades = list(Review.objects.order_by("prompt_index").values_list("score", "comment", "reviewer__username"))
    assert grades == [(4, "Follows the prompt; rhymes.", "rev"), (5, "", "rev")]
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.PASSED
