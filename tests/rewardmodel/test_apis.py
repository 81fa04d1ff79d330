"""The reward-model API: researchers start, follow, cancel, download and score, and queue best-of-K
previews that a sampling worker ranks; nobody else can."""

import io
import zipfile
from datetime import timedelta

import pytest
import torch
from django.utils import timezone
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from core import jobs
from preference_data.models import JobStatus
from rewardmodel.models import BestOfKPreview, RunStatus, TrainingRun
from rewardmodel.scoring import hybrid_reward, score, sigmoid
from rewardmodel.services import rewards, runs
from rewardmodel.tasks import evaluate_reward_model, train_reward_model_run
from sampling import services as sampling_services
from sampling.models import ModelVariant
from tests.factories import AnnotatorFactory, VendorManagerFactory
from tests.helpers import client_for

from .runs import TINY, minilm_checkpoint, polite_batch, tiny_dataset

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("training_settings")]

PROMPT = "How do I bake bread?"
POLITE = "Certainly! Mix flour, water, salt and yeast, let it rise, then bake it hot."
RUDE = "Ugh, obviously mix flour, water, salt and yeast. Stop asking."


@pytest.fixture
def api(researcher):
    return client_for(researcher)


@pytest.fixture
def raters():
    return AnnotatorFactory.create_batch(3)


def trained(api, dataset, **fields) -> dict:
    created = api.post(
        "/api/training-runs/",
        {"dataset": dataset.pk, "base_checkpoint": minilm_checkpoint().pk, "hyperparameters": TINY, **fields},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert train_reward_model_run.delay(created.json()["id"]).get() == "succeeded"
    return api.get(f"/api/training-runs/{created.json()['id']}/").json()


def test_a_researcher_trains_follows_downloads_and_scores(api, researcher, raters, tmp_path):
    dataset = tiny_dataset(researcher, [polite_batch(raters, 32)])
    created = api.post(
        "/api/training-runs/",
        {
            "dataset": dataset.pk,
            "base_checkpoint": minilm_checkpoint().pk,
            "margin_table": "large",
            "hyperparameters": {**TINY, "checkpoint_every": 0},
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["status"], body["kind"], body["margin_table"], body["download_url"]) == (
        "queued",
        "helpfulness",
        "large",
        None,
    )
    assert body["hyperparameters"]["learning_rate"] == TINY["learning_rate"]
    assert body["hyperparameters"]["warmup_ratio"] == 0.03  # Llama 2's where nothing else was said
    assert body["name"].startswith("Helpfulness RM · tiny")

    run_id = body["id"]
    train_reward_model_run.delay(run_id).get()
    run = api.get(f"/api/training-runs/{run_id}/").json()
    assert (run["status"], run["step"], run["percent"], run["stale"]) == ("succeeded", run["total_steps"], 100.0, False)
    assert run["evaluations"][0]["status"] == "done" and run["evaluations"][0]["accuracy"] > 0.75
    assert api.get("/api/training-runs/", {"status": "succeeded"}).json()["count"] == 1

    metrics = api.get(f"/api/training-runs/{run_id}/metrics/").json()
    assert [m["step"] for m in metrics] == list(range(1, run["total_steps"] + 1))
    assert [m["step"] for m in api.get(f"/api/training-runs/{run_id}/metrics/", {"after": 2}).json()] == list(
        range(3, run["total_steps"] + 1)
    )

    scored = api.post(
        f"/api/training-runs/{run_id}/score/",
        {"context": [{"role": "user", "content": PROMPT}], "response": POLITE},
        format="json",
    ).json()
    assert scored["probability"] == pytest.approx(sigmoid(scored["reward"]))
    rude = api.post(f"/api/training-runs/{run_id}/score/", {"dialogue": PROMPT, "response": RUDE}, format="json")
    assert rude.json()["reward"] < scored["reward"]  # the learnt preference

    download = api.get(run["download_url"])
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    assert download["Content-Disposition"].startswith(f'attachment; filename="preflab-rm-{run_id}-helpfulness-rm')
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))
    assert archive.testzip() is None and not any(n.endswith("optimizer.pt") for n in archive.namelist())
    archive.extractall(tmp_path)
    (folder,) = list(tmp_path.glob("preflab-rm-*"))
    card = (folder / "README.md").read_text()  # the model card, its example loading this very folder
    assert card.startswith(f"# {run['name']}\n") and f"from_pretrained({folder.name!r})" in card
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        again = score(model, tokenizer, [{"role": "user", "content": PROMPT}], POLITE)
    assert again == pytest.approx(scored["reward"], abs=1e-5)  # the download scores as the service does


def test_hybrid_reward_best_of_k_and_evaluation_on_another_test_set(
    api, researcher, raters, server, django_capture_on_commit_callbacks
):
    helpful_batch = polite_batch(raters, 24, name="help")
    safety_batch = polite_batch(raters, 32, focus="safety", seed=5, name="safety")
    helpful = trained(api, tiny_dataset(researcher, [helpful_batch], name="helpful"))
    safety = trained(api, tiny_dataset(researcher, [helpful_batch, safety_batch], mix="safety", name="safe"))
    assert (helpful["kind"], safety["kind"]) == ("helpfulness", "safety")

    def single(run, response):
        return api.post(f"/api/training-runs/{run['id']}/score/", {"dialogue": PROMPT, "response": response}).json()

    for is_safety_prompt in (False, True):
        answer = api.post(
            "/api/training-runs/hybrid-score/",
            {
                "helpfulness_run": helpful["id"],
                "safety_run": safety["id"],
                "dialogue": PROMPT,
                "response": POLITE,
                "is_safety_prompt": is_safety_prompt,
            },
            format="json",
        )
        assert answer.status_code == 200, answer.json()
        hybrid = answer.json()
        r_help, r_safe = single(helpful, POLITE)["reward"], single(safety, POLITE)["reward"]
        assert hybrid["helpfulness"]["reward"] == pytest.approx(r_help, abs=1e-6)
        assert hybrid["safety"]["reward"] == pytest.approx(r_safe, abs=1e-6)
        assert hybrid["reward"] == pytest.approx(hybrid_reward(r_help, r_safe, is_safety_prompt), abs=1e-6)
        takes_safety = is_safety_prompt or sigmoid(r_safe) < 0.15
        assert hybrid["used"] == ("safety" if takes_safety else "helpfulness")
    swapped = api.post(
        "/api/training-runs/hybrid-score/",
        {"helpfulness_run": safety["id"], "safety_run": helpful["id"], "dialogue": PROMPT, "response": POLITE},
        format="json",
    )
    assert swapped.status_code == 400 and swapped.json()["field"] == "helpfulness_run"

    server.set("varied")
    variant = sampling_services.variant_create(
        name="endpoint", backend="openai", base_url=f"{server.base_url}/v1", api_model="fake", created_by=None
    )
    asked = {"variant": variant.pk, "k": 3, "run": helpful["id"], "safety_run": safety["id"], "dialogue": PROMPT}
    with django_capture_on_commit_callbacks(execute=True):  # the sampling task runs at commit (eagerly)
        best = api.post("/api/training-runs/best-of-k/", asked, format="json")
        # The request only queues the preview: nothing was sampled when it answered.
        assert best.status_code == 202, best.json()
        assert best.json()["status"] == "queued" and best.json()["result"] is None
        assert best["Location"] == best.json()["url"]
    preview = api.get(best.json()["url"])
    assert preview.status_code == 200 and preview.json()["status"] == "done", preview.json()
    assert (preview.json()["attempts"], preview.json()["error"], preview.json()["k"]) == (1, "", 3)
    result = preview.json()["result"]
    ranked = result["candidates"]
    assert [c["rank"] for c in ranked] == [1, 2, 3] and len({c["text"] for c in ranked}) == 3
    assert [c["reward"] for c in ranked] == sorted((c["reward"] for c in ranked), reverse=True)
    assert result["ranking"] == "hybrid" and result["seed"] == preview.json()["seed"]
    assert sorted(c["seed"] for c in ranked) == [result["seed"] + i for i in range(3)]
    assert ranked[0]["helpfulness"]["reward"] == pytest.approx(single(helpful, ranked[0]["text"])["reward"], abs=1e-6)

    # Input that cannot run is refused in the request, with the field at fault, and nothing is queued.
    refusals = [
        ({"k": 99}, 400, "k", "K must be between 1 and"),
        ({"temperature": 3}, 400, "temperature", "between 0 and 2"),
        ({"dialogue": "User: Hi\nAssistant: Hello"}, 400, "context", "must end with the user's turn"),
        ({"safety_run": helpful["id"]}, 400, "safety_run", "is a helpfulness model"),
        ({"seed": -1}, 400, "seed", "The seed must be between 0 and"),
    ]
    for change, code, field, message in refusals:
        with django_capture_on_commit_callbacks(execute=True) as sent:
            refused = api.post("/api/training-runs/best-of-k/", {**asked, **change}, format="json")
        assert (refused.status_code, refused.json()["field"]) == (code, field), refused.json()
        assert message in refused.json()["detail"] and not sent
    assert BestOfKPreview.objects.count() == 1

    server.set("401")  # a model endpoint that refuses: the preview fails with the reason
    with django_capture_on_commit_callbacks(execute=True):
        failing = api.post("/api/training-runs/best-of-k/", {**asked, "safety_run": None}, format="json")
    failed = api.get(failing.json()["url"]).json()
    assert (failed["status"], failed["result"]) == ("failed", None)
    assert "Invalid API key provided" in failed["error"]

    evaluation = api.post("/api/run-evaluations/", {"run": safety["id"], "dataset": helpful["dataset"]})
    assert evaluation.status_code == 202 and evaluation.json()["status"] == "queued"
    evaluate_reward_model.delay(evaluation.json()["id"]).get()
    done = api.get(f"/api/run-evaluations/{evaluation.json()['id']}/").json()
    assert (done["status"], done["dataset_name"]) == ("done", "helpful")
    assert done["report"]["by_strength"]["avg"]["n"] == done["n"] > 0
    assert len(api.get("/api/run-evaluations/", {"run": safety["id"]}).json()["results"]) == 2


def test_cancel_resume_and_refusals(api, researcher, raters):
    dataset = tiny_dataset(researcher, [polite_batch(raters, 8)], test_fraction=0)
    checkpoint = minilm_checkpoint()
    run = api.post("/api/training-runs/", {"dataset": dataset.pk, "base_checkpoint": checkpoint.pk}, format="json")
    run_id = run.json()["id"]

    cancelled = api.post(f"/api/training-runs/{run_id}/cancel/")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"/api/training-runs/{run_id}/cancel/")
    assert again.status_code == 409 and "nothing to cancel" in again.json()["detail"]
    resumed = api.post(f"/api/training-runs/{run_id}/resume/")
    assert resumed.status_code == 202 and resumed.json()["status"] == "queued"
    assert api.post(f"/api/training-runs/{run_id}/resume/").status_code == 409
    assert api.get(f"/api/training-runs/{run_id}/download/").status_code == 409
    scored = api.post(f"/api/training-runs/{run_id}/score/", {"dialogue": PROMPT, "response": POLITE})
    assert scored.status_code == 409 and "no saved model" in scored.json()["detail"]

    bad = api.post(
        "/api/training-runs/",
        {"dataset": dataset.pk, "base_checkpoint": checkpoint.pk, "hyperparameters": {"batch_pairs": 0}},
        format="json",
    )
    assert bad.status_code == 400 and "positive" in bad.json()["detail"]
    empty_prompt = api.post(f"/api/training-runs/{run_id}/score/", {"dialogue": "", "response": POLITE})
    assert empty_prompt.status_code == 400 and empty_prompt.json()["field"] == "context"

    registered = api.post(
        "/api/base-checkpoints/",
        {"name": "tiny-bert", "path": "/models/tiny-bert", "kind": "encoder", "suggested_hyperparameters": {"lr": 1}},
        format="json",
    )
    assert registered.status_code == 400 and registered.json()["field"] == "lr"
    registered = api.post(
        "/api/base-checkpoints/", {"name": "tiny-bert", "path": "/models/tiny-bert", "kind": "encoder"}, format="json"
    )
    assert registered.status_code == 201
    assert {c["name"] for c in api.get("/api/base-checkpoints/").json()["results"]} == {checkpoint.name, "tiny-bert"}
    assert TrainingRun.objects.get(pk=run_id).status == RunStatus.QUEUED


def test_only_researchers_reach_reward_models(raters, researcher):
    dataset = tiny_dataset(researcher, [polite_batch(raters, 4)], test_fraction=0)
    run = runs.run_create(created_by=researcher, dataset=dataset, base_checkpoint=minilm_checkpoint())
    preview = lost_preview(run, attempts=0)
    for user in (AnnotatorFactory(), VendorManagerFactory()):
        client = client_for(user)
        assert client.get("/api/training-runs/").status_code == 403
        assert client.get(f"/api/training-runs/{run.pk}/download/").status_code == 403
        assert client.post("/api/training-runs/", {"dataset": dataset.pk}).status_code == 403
        assert client.post("/api/training-runs/hybrid-score/", {}).status_code == 403
        assert client.post("/api/training-runs/best-of-k/", {}).status_code == 403
        assert client.get(f"/api/training-runs/best-of-k/{preview.pk}/").status_code == 403
        assert client.get("/api/base-checkpoints/").status_code == 403
        assert client.get("/api/run-evaluations/").status_code == 403


def lost_preview(run: TrainingRun, *, attempts: int) -> BestOfKPreview:
    """A preview whose worker died while sampling: running, its heartbeat long stopped."""
    variant = ModelVariant.objects.filter(name="endpoint").first() or sampling_services.variant_create(
        name="endpoint", backend="openai", base_url="http://127.0.0.1:9/v1", api_model="fake", created_by=None
    )
    return BestOfKPreview.objects.create(
        variant=variant,
        run=run,
        context=[{"role": "user", "content": PROMPT}],
        k=2,
        temperature=0.6,
        seed=7,
        status=JobStatus.RUNNING,
        attempts=attempts,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )


def test_a_preview_whose_worker_died_is_tried_again_then_failed_with_the_reason(api, researcher, raters, settings):
    settings.PREFLAB_SAMPLING_MAX_ATTEMPTS = 2
    dataset = tiny_dataset(researcher, [polite_batch(raters, 4)], test_fraction=0)
    run = runs.run_create(created_by=researcher, dataset=dataset, base_checkpoint=minilm_checkpoint())
    kind = jobs.kind(rewards.BEST_OF_K)
    assert (kind.queue, kind.task) == ("sampling", "rewardmodel.best_of_k_preview")

    again = lost_preview(run, attempts=1)  # a second attempt is left: it is queued and sent again
    assert jobs.recover_lost(kind, timezone.now()) == [again.pk]
    retried = api.get(f"/api/training-runs/best-of-k/{again.pk}/").json()
    # The eager task ran the second attempt; this run has no saved model, which it says.
    assert (retried["status"], retried["attempts"]) == ("failed", 2)
    assert "has no saved model yet" in retried["error"]

    given_up = lost_preview(run, attempts=2)  # its last attempt: failed, saying why
    assert jobs.recover_lost(kind, timezone.now()) == []
    failed = api.get(f"/api/training-runs/best-of-k/{given_up.pk}/").json()
    assert failed["status"] == "failed" and "stopped after attempt 2" in failed["error"]
    assert api.get("/api/training-runs/best-of-k/999999/").status_code == 404
