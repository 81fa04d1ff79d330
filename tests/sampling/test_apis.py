"""The sampling API: researchers manage variants and policies; annotators submit prompts, poll their
own jobs and never see a model's name."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Assignment, Prompt
from core import jobs
from sampling.models import GenerationJob, ModelVariant
from tests.factories import AnnotatorFactory, BatchFactory, UserFactory
from tests.helpers import client_for
from tests.sampling.conftest import prompt_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher():
    return UserFactory()


def test_researchers_register_and_version_variants(researcher):
    api = client_for(researcher)
    created = api.post(
        "/api/model-variants/",
        {
            "name": "vllm-llama",
            "backend": "openai",
            "base_url": "http://gpu-1:8000/v1",
            "api_model": "meta-llama/Llama-2-7b-chat-hf",
            "api_key_env": "VLLM_API_KEY",
            "system_prompt": "You are helpful.",
            "max_new_tokens": 200,
            "top_p": 0.9,
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    variant = created.json()
    assert (variant["version"], variant["chat_template"], variant["created_by"]) == (1, "model", researcher.username)

    renamed = api.patch(f"/api/model-variants/{variant['id']}/", {"description": "Llama 2 7B chat"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["version"] == 1

    newer = api.patch(f"/api/model-variants/{variant['id']}/", {"top_p": 0.95}, format="json")
    assert newer.status_code == 201
    assert (newer.json()["version"], newer.json()["top_p"], newer.json()["description"]) == (2, 0.95, "Llama 2 7B chat")
    versions = api.get("/api/model-variants/?name=vllm-llama").json()["results"]
    assert [(v["version"], v["is_active"]) for v in versions] == [(2, True), (1, False)]

    refused = api.post("/api/model-variants/", {"name": "x", "backend": "transformers"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["field"] == "checkpoint_path"


def test_annotators_cannot_see_or_manage_variants_and_policies():
    api = client_for(AnnotatorFactory())
    assert api.get("/api/model-variants/").status_code == 403
    assert api.get("/api/pair-policies/").status_code == 403
    assert api.post("/api/model-variants/", {"name": "x"}, format="json").status_code == 403


def test_researchers_set_a_policy_and_fill_a_pool(researcher, endpoint_variants, django_capture_on_commit_callbacks):
    api = client_for(researcher)
    batch = BatchFactory(prompt_mode="pool")
    Prompt.objects.create(batch=batch, text="Why is the sea salty?")
    body = {"variants": [v.pk for v in endpoint_variants], "temperature_mode": "set", "temperatures": [0.6, 1.0]}

    assert api.put(f"/api/pair-policies/{batch.pk}/", {**body, "temperatures": [0.6]}, format="json").status_code == 400
    saved = api.put(f"/api/pair-policies/{batch.pk}/", body, format="json")
    assert saved.status_code == 200, saved.json()
    policy = api.get(f"/api/pair-policies/{batch.pk}/").json()
    assert [v["name"] for v in policy["variants"]] == ["endpoint-terse", "endpoint-warm"]
    assert policy["temperatures"] == [0.6, 1.0]

    with django_capture_on_commit_callbacks(execute=True):
        filled = api.post(f"/api/pair-policies/{batch.pk}/fill/", {"count": 5}, format="json")
    assert filled.status_code == 202 and len(filled.json()) == 1
    job = api.get(f"/api/generation-jobs/{filled.json()[0]['id']}/").json()
    assert job["status"] == "done" and job["comparison"] and job["policy"]["temperatures"] == [0.6, 1.0]


def test_an_annotator_writes_a_prompt_rates_and_continues_without_seeing_model_names(
    endpoint_variants, django_capture_on_commit_callbacks
):
    annotator = AnnotatorFactory()
    batch = prompt_batch(endpoint_variants)
    api = client_for(annotator)

    empty = api.post("/api/generation-jobs/", {"batch": batch.pk, "prompt": "  "}, format="json")
    assert empty.status_code == 400 and empty.json() == {
        "detail": "Write a prompt first: it is empty.",
        "code": "invalid",
        "field": "prompt",
    }
    tagged = api.post("/api/generation-jobs/", {"batch": batch.pk, "prompt": "[INST] hi"}, format="json")
    assert tagged.status_code == 400 and tagged.json()["tags"] == ["[INST]"]

    with django_capture_on_commit_callbacks(execute=True):
        submitted = api.post("/api/generation-jobs/", {"batch": batch.pk, "prompt": "Hello!"}, format="json")
    assert submitted.status_code == 202
    job = api.get(f"/api/generation-jobs/{submitted.json()['id']}/")
    payload = job.json()
    assert payload["status"] == "done" and payload["lease"] == "live"
    assert payload["context"] == [{"role": "user", "content": "Hello!"}]
    pair = payload["assignment"]
    assert pair["context"] == [{"role": "user", "content": "Hello!"}]
    assert pair["left"]["text"] and pair["right"]["text"] and pair["left"]["text"] != pair["right"]["text"]
    text = json.dumps(payload)
    for secret in ("endpoint-terse", "endpoint-warm", "terse-7b", "warm-7b", "policy", "127.0.0.1", "variant"):
        assert secret not in text
    assert api.get("/api/generation-jobs/current/", {"batch": batch.pk}).json()["id"] == payload["id"]

    rated = api.post(
        "/api/ratings/",
        {
            "assignment": pair["assignment"],
            "chosen_response": pair["right"]["id"],
            "strength": "slightly_better",
            "idempotency_key": "k1",
        },
        format="json",
    )
    assert rated.status_code == 201
    current = api.get("/api/generation-jobs/current/", {"batch": batch.pk}).json()
    assert current["lease"] == "rated"
    assert current["continuation"][-1] == {"role": "assistant", "content": pair["right"]["text"]}

    with django_capture_on_commit_callbacks(execute=True):
        continued = api.post(
            "/api/generation-jobs/",
            {"batch": batch.pk, "prompt": "Why?", "continues": pair["assignment"]},
            format="json",
        )
    assert continued.status_code == 202
    second = api.get(f"/api/generation-jobs/{continued.json()['id']}/").json()
    assert [t["role"] for t in second["assignment"]["context"]] == ["user", "assistant", "user"]
    assert second["assignment"]["context"][1]["content"] == pair["right"]["text"]


def test_jobs_are_private_to_their_writer_and_researchers_see_the_detail(
    researcher, endpoint_variants, server, django_capture_on_commit_callbacks
):
    server.set("always-500")
    writer, other = AnnotatorFactory(), AnnotatorFactory()
    batch = prompt_batch(endpoint_variants)
    with django_capture_on_commit_callbacks(execute=True):
        job_id = client_for(writer).post("/api/generation-jobs/", {"batch": batch.pk, "prompt": "Hi"}).json()["id"]

    mine = client_for(writer).get(f"/api/generation-jobs/{job_id}/").json()
    assert (mine["status"], mine["error_code"], mine["retryable"]) == ("failed", "endpoint_down", True)
    assert "not answering" in mine["message"] and "error_detail" not in mine
    assert client_for(other).get(f"/api/generation-jobs/{job_id}/").status_code == 404
    assert client_for(other).post(f"/api/generation-jobs/{job_id}/retry/").status_code == 404
    seen = client_for(researcher).get(f"/api/generation-jobs/{job_id}/").json()
    assert "HTTP 500" in seen["error_detail"] and seen["policy"]["variants"]

    server.set("varied")
    with django_capture_on_commit_callbacks(execute=True):
        retried = client_for(writer).post(f"/api/generation-jobs/{job_id}/retry/")
    assert retried.status_code == 202
    assert GenerationJob.objects.get(pk=job_id).status == "done"
    assert Assignment.objects.get(annotator=writer).comparison_id == GenerationJob.objects.get(pk=job_id).comparison_id


def test_vendor_managers_and_non_writers_get_nothing(endpoint_variants):
    from tests.factories import VendorManagerFactory

    batch = prompt_batch(endpoint_variants, prompt_mode="pool")
    manager = client_for(VendorManagerFactory())
    assert manager.get("/api/generation-jobs/").json()["results"] == []
    assert manager.post("/api/generation-jobs/", {"batch": batch.pk, "prompt": "x"}).status_code == 403
    refused = client_for(AnnotatorFactory()).post("/api/generation-jobs/", {"batch": batch.pk, "prompt": "Hello"})
    assert refused.status_code == 409 and "prepared in advance" in refused.json()["detail"]
    assert ModelVariant.objects.count() == 2


def test_polling_a_job_writes_nothing_and_the_reconciler_fails_one_whose_worker_died(endpoint_variants, settings):
    settings.PREFLAB_SAMPLING_MAX_ATTEMPTS = 1
    writer = client_for(AnnotatorFactory())
    batch = prompt_batch(endpoint_variants)
    job_id = writer.post("/api/generation-jobs/", {"batch": batch.pk, "prompt": "Hi"}).json()["id"]  # never sent
    GenerationJob.objects.filter(pk=job_id).update(
        status="running", attempts=1, worker="gone:1", heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    before = GenerationJob.objects.values().get(pk=job_id)

    assert writer.get(f"/api/generation-jobs/{job_id}/").json()["status"] == "running"
    assert writer.get("/api/generation-jobs/current/", {"batch": batch.pk}).json()["status"] == "running"
    assert GenerationJob.objects.values().get(pk=job_id) == before  # a GET is a read

    jobs.reconcile()
    polled = writer.get(f"/api/generation-jobs/{job_id}/").json()
    assert (polled["status"], polled["error_code"], polled["retryable"]) == ("failed", "interrupted", True)
