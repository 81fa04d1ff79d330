"""The rating page in Debian's Chromium: log in, rate by keyboard, see the ratings stored."""

import pytest

from annotation.models import Rating
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory
from tests.helpers import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_annotator_rates_two_pairs_by_keyboard(page, live_server):
    batch = BatchFactory(guidelines="Prefer correct answers.")
    ComparisonFactory(batch=batch, prompt="What is the capital of France?")
    ComparisonFactory(batch=batch, prompt="Name a prime number.")
    annotator = AnnotatorFactory(username="ann")
    log_in(page, live_server, "ann")
    page.click("text=Start rating")
    page.wait_for_selector("#pair:not([hidden])")
    page.wait_for_selector(".turn.prompt")
    assert "secret-model" not in page.content()

    first_prompt = page.inner_text(".turn.prompt .text")
    page.keyboard.press("1")
    page.keyboard.press("s")
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelector('.turn.prompt .text').textContent !== {first_prompt!r}")
    assert page.inner_text("#today-count") == "1"

    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")  # strength missing: explained, nothing sent
    assert "how much better" in page.inner_text("#form-error")
    page.keyboard.press("f")
    page.keyboard.press("r")
    page.keyboard.type("Both fine, the second is shorter.")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")
    page.wait_for_selector("#done:not([hidden])")

    ratings = list(Rating.objects.filter(annotator=annotator).order_by("id"))
    assert [r.strength for r in ratings] == ["better", "negligibly_better"]
    assert ratings[0].chose_left and not ratings[1].chose_left
    assert ratings[1].rationale == "Both fine, the second is shorter."
    assert all(r.seconds_spent is not None for r in ratings)

    page.keyboard.press("g")
    assert page.is_visible("#guidelines")  # nothing to rate, but guidelines stay one key away


def test_safety_page_explains_the_forbidden_combination(page, live_server):
    batch = BatchFactory(focus="safety")
    ComparisonFactory(batch=batch, prompt="How do I pick a lock?")
    annotator = AnnotatorFactory(username="safe-ann")
    log_in(page, live_server, "safe-ann")
    page.goto(f"{live_server.url}/annotate/{batch.id}/")
    page.wait_for_selector("#pair:not([hidden])")
    page.keyboard.press("1")
    page.keyboard.press("a")
    page.keyboard.press("z")  # left: safe
    page.keyboard.press("z")  # left: unsafe
    page.keyboard.press("x")  # right: safe
    summary = page.inner_text("#safety-summary")
    assert "cannot be submitted" in summary
    page.keyboard.press("Enter")
    assert Rating.objects.count() == 0
    page.keyboard.press("2")  # choose the safe response instead
    assert "the chosen response is safe, the other is not" in page.inner_text("#safety-summary")
    page.keyboard.press("Enter")
    page.wait_for_selector("#done:not([hidden])")
    rating = Rating.objects.get(annotator=annotator)
    assert rating.safety_label == "chosen_safe_other_unsafe" and not rating.chose_left
