"""Annotator-written prompts in Debian's Chromium, sampled by the real small model on a real Celery
worker on the file broker (the embedded default, as `make demo` runs it): write a prompt, watch it
being sampled, rate the pair, continue the dialogue, and recover from a model that is missing."""

import pytest

from annotation.models import Rating, Turn
from sampling.models import GenerationJob
from tests.conftest import wait_for
from tests.factories import AnnotatorFactory
from tests.frontend.test_rating_page import log_in
from tests.sampling.conftest import make_variant, prompt_batch

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sampling_worker(embedded_worker, single_torch_thread):
    """Jobs are sent after commit to a real worker (threads of this process on the file broker), as
    in the embedded default; the test ends with every job it queued finished, so no sampling
    outlives the test's database."""
    yield embedded_worker
    wait_for(lambda: not GenerationJob.objects.filter(status__in=["queued", "running"]).exists(), 120)


def smollm_variants(checkpoint_path: str) -> list:
    common = {"backend": "transformers", "checkpoint_path": checkpoint_path, "max_new_tokens": 12}
    return [
        make_variant("secret-concise", system_prompt="Answer briefly.", top_p=0.9, **common),
        make_variant("secret-friendly", system_prompt="You are a warm tutor.", top_p=0.95, **common),
    ]


def test_write_a_prompt_rate_the_pair_and_continue_the_dialogue(
    page, live_server, sampling_worker, embedded_checkpoint
):
    batch = prompt_batch(smollm_variants(str(embedded_checkpoint)), name="Week 9 · written prompts")
    annotator = AnnotatorFactory(username="writer")
    log_in(page, live_server, "writer")
    page.click("text=Start rating")
    page.wait_for_selector("#composer:not([hidden])")
    assert page.inner_text("#composer-label") == "Write a prompt"

    page.keyboard.press("Enter")  # nothing written yet: explained, nothing sent
    assert "empty" in page.inner_text("#prompt-error")
    page.keyboard.type("Give me one tip")
    page.keyboard.press("Shift+Enter")  # a new line, not a submit
    page.keyboard.type("for sleeping better.")
    page.keyboard.press("Enter")

    page.wait_for_selector("#sampling:not([hidden])")
    assert page.inner_text(".turn.prompt .text") == "Give me one tip\nfor sleeping better."
    page.wait_for_selector("#rating-form:not([hidden])", timeout=120_000)
    assert page.is_hidden("#sampling") and page.is_hidden("#composer")
    left, right = page.inner_text("#response-left .text"), page.inner_text("#response-right .text")
    assert left and right and left != right
    assert "secret-" not in page.content()

    page.keyboard.press("2")
    page.keyboard.press("d")
    page.keyboard.press("Enter")
    page.wait_for_selector("#after-rating:not([hidden])")
    assert page.inner_text("#today-count") == "1"
    page.keyboard.press("c")
    page.wait_for_selector("#composer:not([hidden])")
    assert page.inner_text("#composer-label") == "Your next message"
    assert page.inner_text(".turn.assistant .text") == right  # the chosen response joined the dialogue
    page.keyboard.type("Why does that help?")
    page.keyboard.press("Enter")
    page.wait_for_selector("#rating-form:not([hidden])", timeout=120_000)
    assert page.locator(".turn").count() == 3
    assert page.inner_text(".turn.prompt .text") == "Why does that help?"

    page.keyboard.press("1")
    page.keyboard.press("a")
    page.keyboard.press("Enter")
    page.wait_for_selector("#after-rating:not([hidden])")
    page.keyboard.press("n")
    page.wait_for_selector("#composer:not([hidden])")
    assert page.locator(".turn").count() == 0

    first, second = GenerationJob.objects.filter(batch=batch).order_by("id")
    assert (first.context_length, second.context_length) == (1, 3)
    assert list(Turn.objects.filter(dialogue=first.dialogue).values_list("role", flat=True)) == [
        "user",
        "assistant",
        "user",
    ]
    assert [r.strength for r in Rating.objects.filter(annotator=annotator).order_by("id")] == [
        "slightly_better",
        "significantly_better",
    ]


def test_a_missing_model_shows_a_clear_message_and_try_again_recovers(
    page, live_server, sampling_worker, embedded_checkpoint, tmp_path
):
    installed_later = tmp_path / "smollm2"
    prompt_batch(smollm_variants(str(installed_later)))
    AnnotatorFactory(username="patient")
    log_in(page, live_server, "patient")
    page.click("text=Start rating")
    page.wait_for_selector("#composer:not([hidden])")
    page.fill("#prompt-text", "Name a colour of the rainbow.")
    page.keyboard.press("Enter")

    page.wait_for_selector("#sampling-failed:not([hidden])", timeout=60_000)
    assert "not installed on the sampling worker" in page.inner_text("#sampling-error")
    assert str(installed_later) not in page.content() and "secret-" not in page.content()
    assert GenerationJob.objects.get().error_code == "model_missing"

    installed_later.symlink_to(embedded_checkpoint)  # the model is installed
    page.keyboard.press("Enter")  # try again
    page.wait_for_selector("#rating-form:not([hidden])", timeout=120_000)
    job = GenerationJob.objects.get()
    assert (job.status, job.attempts) == ("done", 2)


def test_an_over_long_prompt_is_refused_with_its_length(page, live_server, settings):
    settings.PREFLAB_MAX_PROMPT_CHARS = 40
    variants = [make_variant(f"v{i}", backend="transformers", checkpoint_path="/nowhere") for i in range(2)]
    prompt_batch(variants)
    AnnotatorFactory(username="wordy")
    log_in(page, live_server, "wordy")
    page.click("text=Start rating")
    page.wait_for_selector("#composer:not([hidden])")
    page.fill("#prompt-text", "Tell me everything about the history of the printing press.")
    assert "over" in page.get_attribute("#prompt-count", "class")
    page.keyboard.press("Enter")
    assert "over the limit of 40" in page.inner_text("#prompt-error")
    page.fill("#prompt-text", "Explain [INST] tags.")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#prompt-error').textContent.includes('control tags')")
    assert not GenerationJob.objects.exists()
