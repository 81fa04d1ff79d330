"""The reward-model API: researchers start, follow, cancel, download and score; nobody else can."""

import io
import zipfile

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardmodel.models import RunStatus, TrainingRun
from rewardmodel.scoring import hybrid_reward, score, sigmoid
from rewardmodel.services import runs
from rewardmodel.tasks import evaluate_reward_model, train_reward_model_run
from sampling import services as sampling_services
from tests.factories import AnnotatorFactory, UserFactory, VendorManagerFactory
from tests.helpers import client_for

from .runs import TINY, minilm_checkpoint, polite_batch, tiny_dataset

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("training_settings")]

PROMPT = "How do I bake bread?"
POLITE = "Certainly! Mix flour, water, salt and yeast, let it rise, then bake it hot."
RUDE = "Ugh, obviously mix flour, water, salt and yeast. Stop asking."


@pytest.fixture
def researcher():
    return UserFactory(username="rhea")


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
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        again = score(model, tokenizer, [{"role": "user", "content": PROMPT}], POLITE)
    assert again == pytest.approx(scored["reward"], abs=1e-5)  # the download scores as the service does


def test_hybrid_reward_best_of_k_and_evaluation_on_another_test_set(api, researcher, raters, server):
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
    best = api.post(
        "/api/training-runs/best-of-k/",
        {"variant": variant.pk, "k": 3, "run": helpful["id"], "safety_run": safety["id"], "dialogue": PROMPT},
        format="json",
    )
    assert best.status_code == 200, best.json()
    ranked = best.json()["candidates"]
    assert [c["rank"] for c in ranked] == [1, 2, 3] and len({c["text"] for c in ranked}) == 3
    assert [c["reward"] for c in ranked] == sorted((c["reward"] for c in ranked), reverse=True)
    assert best.json()["ranking"] == "hybrid"
    assert ranked[0]["helpfulness"]["reward"] == pytest.approx(single(helpful, ranked[0]["text"])["reward"], abs=1e-6)
    too_many = api.post(
        "/api/training-runs/best-of-k/", {"variant": variant.pk, "k": 99, "run": helpful["id"], "dialogue": PROMPT}
    )
    assert too_many.status_code == 400 and too_many.json()["field"] == "k"

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
    for user in (AnnotatorFactory(), VendorManagerFactory()):
        client = client_for(user)
        assert client.get("/api/training-runs/").status_code == 403
        assert client.get(f"/api/training-runs/{run.pk}/download/").status_code == 403
        assert client.post("/api/training-runs/", {"dataset": dataset.pk}).status_code == 403
        assert client.post("/api/training-runs/hybrid-score/", {}).status_code == 403
        assert client.get("/api/base-checkpoints/").status_code == 403
        assert client.get("/api/run-evaluations/").status_code == 403
