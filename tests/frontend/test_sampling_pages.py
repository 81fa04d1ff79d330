"""The researchers' sampling pages: register and version variants, set a batch's pair policy, fill
its prompt pool, and see the jobs with their errors. Annotators get none of it."""

import pytest

from annotation.models import Prompt
from sampling.models import GenerationJob, ModelVariant, PairPolicy
from tests.factories import AnnotatorFactory, BatchFactory, UserFactory
from tests.sampling.conftest import load_task_modules, make_variant, prompt_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher_client(client):
    client.force_login(UserFactory())
    return client


def variant_form(**fields) -> dict:
    data = {
        "name": "llama-chat",
        "backend": "transformers",
        "checkpoint_path": "/models/llama-2-7b-chat",
        "chat_template": "llama2",
        "system_prompt": "You are helpful.",
        "max_new_tokens": 200,
        "top_p": 0.9,
        "description": "",
    }
    return {**data, **fields}


def test_register_then_edit_a_variant_into_a_new_version(researcher_client):
    answer = researcher_client.post("/research/models/", variant_form())
    variant = ModelVariant.objects.get(name="llama-chat")
    assert answer.status_code == 302 and answer.url == f"/research/models/{variant.pk}/"
    page = researcher_client.get("/research/models/").content.decode()
    assert "llama-chat" in page and "/models/llama-2-7b-chat" in page

    refused = researcher_client.post("/research/models/", variant_form(name="endpoint", backend="openai"))
    assert refused.status_code == 400 and "base URL" in refused.content.decode()

    edit = {key: value for key, value in variant_form(top_p=0.95, is_active="on").items() if key != "name"}
    answer = researcher_client.post(f"/research/models/{variant.pk}/", edit, follow=True)
    assert "new version: llama-chat v2" in answer.content.decode()
    assert list(ModelVariant.objects.values_list("version", "is_active")) == [(2, True), (1, False)]


def test_set_a_policy_fill_the_pool_and_see_failed_jobs(researcher_client, django_capture_on_commit_callbacks):
    load_task_modules()  # the fill's job runs eagerly when its request commits (no worker here)
    variants = [make_variant(f"gone-{i}", backend="transformers", checkpoint_path="/no/such/model") for i in (1, 2)]
    batch = BatchFactory(prompt_mode="pool")
    Prompt.objects.create(batch=batch, text="Why is the sea salty?")
    url = f"/research/batches/{batch.pk}/sampling/"

    form = {"variants": [v.pk for v in variants], "temperature_mode": "set", "max_resample_attempts": 3}
    refused = researcher_client.post(url, {**form, "temperatures": "0.7"})
    assert refused.status_code == 400 and "two different" in refused.content.decode()
    assert researcher_client.post(url, {**form, "temperatures": "0.6, 0.8, 1.0"}).status_code == 302
    assert PairPolicy.objects.get(batch=batch).temperatures == [0.6, 0.8, 1.0]
    summary = researcher_client.get(f"/research/batches/{batch.pk}/").content.decode()
    assert "gone-1 v1" in summary and "{0.6, 0.8, 1}" in summary

    with django_capture_on_commit_callbacks(execute=True):
        researcher_client.post(f"/research/batches/{batch.pk}/sampling/fill/", {"count": 5})
    job = GenerationJob.objects.get()
    assert (job.status, job.error_code) == ("failed", "model_missing")
    page = researcher_client.get(url).content.decode()
    assert "/no/such/model" in page and "Why is the sea salty?" in page

    with django_capture_on_commit_callbacks(execute=True):
        assert researcher_client.post(f"/research/sampling-jobs/{job.pk}/retry/").status_code == 302
    job.refresh_from_db()
    assert (job.status, job.error_code, job.attempts) == ("failed", "model_missing", 2)  # still not installed


def test_annotators_cannot_open_the_sampling_pages(client):
    client.force_login(AnnotatorFactory())
    batch = prompt_batch([make_variant(f"v{i}", backend="transformers", checkpoint_path="/m") for i in (1, 2)])
    for url in ("/research/models/", f"/research/batches/{batch.pk}/sampling/"):
        assert client.get(url).status_code == 403
