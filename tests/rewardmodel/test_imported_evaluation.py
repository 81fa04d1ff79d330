"""Evaluation an ML team can drive (issue 14): imported files as held-out sets or split by a seeded
rule, so runs on imported data get a real held-out accuracy; every evaluation's per-pair rewards as a
download; many items scored in one streamed request."""

import csv
import io
import json

import pytest

from benchmarks.reward_training import TRAIN_TOPICS, synthetic_pairs
from preference_data import services as data_services
from preference_data.models import DatasetPair, JobStatus
from rewardmodel.models import RunEvaluation, TrainingRun
from rewardmodel.tasks import evaluate_reward_model, train_reward_model_run
from tests.helpers import client_for, page_client_for

from .runs import TINY, minilm_checkpoint

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("training_settings")]


def trl_file(n: int, seed: int = 0) -> io.BytesIO:
    rows = [
        {"prompt": pair.context, "chosen": pair.chosen, "rejected": pair.rejected, "strength": pair.strength}
        for pair in synthetic_pairs(n, seed, TRAIN_TOPICS)
    ]
    return io.BytesIO("".join(json.dumps(row) + "\n" for row in rows).encode())


def imported(name, n=24, **usage):
    return data_services.external_source_import(name=name, focus="helpfulness", source=trl_file(n), **usage)


def built(researcher, sources, name="imported"):
    created = data_services.dataset_build_create(
        created_by=researcher, name=name, external_source_ids=[s.pk for s in sources]
    )
    done = data_services.dataset_build_run(build_id=created.pk)
    assert done.status == JobStatus.DONE, done.error
    return done


def held_out_rows(build) -> set[int]:
    return set(DatasetPair.objects.filter(build=build, split="test").values_list("external__row", flat=True))


def test_an_evaluation_only_source_and_a_seeded_split(researcher):
    train, test = imported("train-part"), imported("held-out", usage="test")
    build = built(researcher, [train, test])
    assert held_out_rows(build) == set(range(1, 25))
    assert DatasetPair.objects.filter(build=build, split="train").count() == 24

    split = imported("split", n=200, usage="split", test_fraction=0.25, split_seed=7)
    once, again = built(researcher, [split], "a"), built(researcher, [split], "b")
    assert held_out_rows(once) == held_out_rows(again)  # the same rows in every build
    assert 30 <= len(held_out_rows(once)) <= 70  # about a quarter of 200
    same_file = imported("split-copy", n=200, usage="split", test_fraction=0.25, split_seed=7)
    assert held_out_rows(built(researcher, [same_file], "c")) == held_out_rows(once)  # keyed on the file, not the id
    other_seed = imported("split-seed-8", n=200, usage="split", test_fraction=0.25, split_seed=8)
    assert held_out_rows(built(researcher, [other_seed], "d")) != held_out_rows(once)
    manifest_source = once.selection["external_sources"][0]
    assert (manifest_source["usage"], manifest_source["test_fraction"], manifest_source["split_seed"]) == (
        "split",
        0.25,
        7,
    )


def test_a_split_without_a_share_is_refused_through_the_api(researcher):
    upload = trl_file(4)
    upload.name = "pairs.jsonl"
    api = client_for(researcher)
    refused = api.post(
        "/api/external-sources/", {"name": "x", "focus": "helpfulness", "usage": "split", "file": upload}
    )
    assert refused.status_code == 400 and refused.json()["field"] == "test_fraction"
    upload.seek(0)
    made = api.post(
        "/api/external-sources/",
        {"name": "x", "focus": "helpfulness", "usage": "split", "test_fraction": 0.5, "file": upload},
    )
    assert made.status_code == 201 and (made.json()["usage"], made.json()["test_fraction"]) == ("split", 0.5)


def test_a_run_on_imported_data_reports_real_held_out_accuracy_and_per_pair_rewards(researcher):
    source = imported("polite", n=48, usage="split", test_fraction=0.25, split_seed=3)
    build = built(researcher, [source])
    api = client_for(researcher)
    created = api.post(
        "/api/training-runs/",
        {"dataset": build.pk, "base_checkpoint": minilm_checkpoint().pk, "hyperparameters": TINY},
        format="json",
    ).json()
    assert created["n_eval_pairs"] == len(held_out_rows(build)) > 0
    assert train_reward_model_run.delay(created["id"]).get() == "succeeded"
    evaluation = RunEvaluation.objects.get(run_id=created["id"])
    assert evaluation.status == "done" and evaluation.n == created["n_eval_pairs"]
    during_training = b"".join(api.get(f"/api/run-evaluations/{evaluation.pk}/pairs/").streaming_content)
    # Evaluating again (the worker's evaluation path) gives the same per-pair rewards as the trainer's.
    again = api.post("/api/run-evaluations/", {"run": created["id"], "dataset": build.pk})
    assert again.status_code == 202 and again.json()["id"] == evaluation.pk
    evaluate_reward_model.delay(evaluation.pk).get()
    evaluation.refresh_from_db()
    assert evaluation.status == "done" and evaluation.n == created["n_eval_pairs"]
    assert [json.loads(line)["id"] for line in during_training.splitlines()] == [
        json.loads(line)["id"]
        for line in b"".join(api.get(f"/api/run-evaluations/{evaluation.pk}/pairs/").streaming_content).splitlines()
    ]

    lines = b"".join(api.get(f"/api/run-evaluations/{evaluation.pk}/pairs/").streaming_content).splitlines()
    pairs = [json.loads(line) for line in lines]
    assert len(pairs) == evaluation.n
    assert all(p["correct"] == (p["reward_chosen"] > p["reward_rejected"]) for p in pairs)
    assert sum(p["correct"] for p in pairs) / len(pairs) == pytest.approx(evaluation.accuracy)
    assert {p["id"] for p in pairs} == {
        f"external:{i}"
        for i in DatasetPair.objects.filter(build=build, split="test").values_list("external_id", flat=True)
    }

    page = page_client_for(researcher).get(f"/research/reward-models/evaluations/{evaluation.pk}/pairs.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(page.streaming_content).decode())))
    assert [float(r["reward_chosen"]) for r in rows] == [p["reward_chosen"] for p in pairs]
    assert api.get(f"/api/run-evaluations/{evaluation.pk}/pairs/", {"file_type": "xlsx"}).status_code == 400

    # Many items in one request, streamed back in order, each as /score answers it alone.
    items = [
        {"context": pair.context, "response": response}
        for pair in synthetic_pairs(5, 11, TRAIN_TOPICS)
        for response in (pair.chosen, pair.rejected)
    ]
    streamed = api.post(f"/api/training-runs/{created['id']}/score-many/", {"items": items}, format="json")
    assert streamed.status_code == 200 and streamed["Content-Type"] == "application/x-ndjson"
    answers = [json.loads(line) for line in b"".join(streamed.streaming_content).splitlines()]
    assert [a["index"] for a in answers] == list(range(len(items)))
    for item, answer in zip(items[:3], answers, strict=False):
        alone = api.post(f"/api/training-runs/{created['id']}/score/", item, format="json").json()
        assert answer["reward"] == pytest.approx(alone["reward"], abs=1e-5)
    bad = api.post(
        f"/api/training-runs/{created['id']}/score-many/",
        {"items": [items[0], {"context": [{"role": "assistant", "content": "hi"}], "response": "x"}]},
        format="json",
    )
    assert bad.status_code == 400 and bad.json()["field"].startswith("items[1]")
    assert TrainingRun.objects.count() == 1


def test_an_unfinished_evaluation_has_no_pair_download(researcher):
    source = imported("held", n=8, usage="test")
    build = built(researcher, [imported("train", n=8), source])
    run = TrainingRun.objects.create(name="r", kind="helpfulness", dataset=build, base_checkpoint=minilm_checkpoint())
    evaluation = RunEvaluation.objects.create(run=run, dataset=build)
    answer = client_for(researcher).get(f"/api/run-evaluations/{evaluation.pk}/pairs/")
    assert answer.status_code == 409 and "not finished" in answer.json()["detail"]
