"""The leaderboard read through the API: majority labels become Bradley–Terry votes (a negligible
label is a tie), the warnings, the CSVs, the reward-model judge and who may see it."""

import csv
import io

import pytest
from django.utils import timezone

from annotation.models import ComparisonStatus
from leaderboard import bradley_terry as bt
from rewardmodel.models import ResponseReward, RunStatus, TrainingRun
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory, ResponseFactory, VariantFactory
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


def labelled(batch, a, b, choice, strength="better", t_a=0.7, t_b=1.0):
    return ComparisonFactory(
        batch=batch,
        response_a=ResponseFactory(variant=a, temperature=t_a),
        response_b=ResponseFactory(variant=b, temperature=t_b),
        status=ComparisonStatus.COMPLETE,
        label_choice=choice,
        label_strength=strength,
        label_vote="unanimous",
        labelled_at=timezone.now(),
    )


@pytest.fixture
def variants():
    return [VariantFactory(name=name) for name in ("alpha", "beta", "gamma", "delta")]


def test_majority_labels_rank_the_variants_with_ties_from_negligible_labels(researcher, variants):
    alpha, beta, *_ = variants
    batch = BatchFactory()
    for _ in range(6):
        labelled(batch, alpha, beta, "a")
    for _ in range(2):
        labelled(batch, alpha, beta, "b", "slightly_better")
    for _ in range(2):
        labelled(batch, alpha, beta, "b", "negligibly_better")
    ComparisonFactory(batch=batch, response_a=ResponseFactory(variant=alpha), response_b=ResponseFactory(variant=beta))

    answer = client_for(researcher).get("/api/leaderboard/", {"batch": batch.pk, "by": "variant", "bootstrap": 50})
    assert answer.status_code == 200, answer.content
    humans = answer.json()["humans"]
    assert [row["variant"] for row in humans["rows"]] == ["alpha v1", "beta v1"]
    first, second = humans["rows"]
    assert (first["wins"], first["losses"], first["ties"]) == (6, 2, 2)
    # The two-item Davidson fit in closed form: theta_a - theta_b = log(6 / 2), nu = 2 / sqrt(12).
    assert first["strength"] - second["strength"] == pytest.approx(
        bt.fit(bt.count_outcomes(2, [(0, 1, bt.WIN)] * 6 + [(0, 1, bt.LOSS)] * 2 + [(0, 1, bt.TIE)] * 2)).strengths[0]
        * 2,
        abs=1e-4,
    )
    assert humans["tie_parameter"] > 0
    assert humans["n_comparisons"] == 10
    assert answer.json()["n_unlabelled"] == 1
    assert humans["matrix"][0][1] == pytest.approx(7 / 10)
    assert first["ci_low"] < first["rating"] < first["ci_high"]


def test_a_disconnected_graph_and_thin_cells_are_warned_about(researcher, variants):
    alpha, beta, gamma, delta = variants
    batch = BatchFactory()
    for _ in range(12):
        labelled(batch, alpha, beta, "a")
    for _ in range(3):
        labelled(batch, gamma, delta, "b")

    body = client_for(researcher).get("/api/leaderboard/", {"batch": batch.pk, "by": "variant", "bootstrap": 20}).json()
    warnings = body["humans"]["warnings"]
    assert body["humans"]["graph_parts"] == 2
    assert any("disconnected (2 parts)" in w and "gamma v1" in w for w in warnings)
    assert any("fewer than 10 comparisons" in w and "delta v1 (3)" in w for w in warnings)
    parts = {row["variant"]: row["graph_part"] for row in body["humans"]["rows"]}
    assert parts == {"alpha v1": 1, "beta v1": 1, "gamma v1": 2, "delta v1": 2}

    linked = BatchFactory(week=batch.week)
    for _ in range(12):
        labelled(linked, beta, gamma, "a")
    week = client_for(researcher).get("/api/leaderboard/", {"week": batch.week, "by": "variant", "bootstrap": 0})
    assert week.json()["humans"]["graph_parts"] == 1
    assert not any("disconnected" in w for w in week.json()["humans"]["warnings"])


def test_variant_times_temperature_cells_and_the_csvs(researcher, variants):
    alpha, beta, *_ = variants
    batch = BatchFactory()
    for _ in range(3):
        labelled(batch, alpha, beta, "a", t_a=0.6, t_b=1.0)
        labelled(batch, alpha, beta, "b", t_a=1.0, t_b=0.6)
    client = client_for(researcher)
    rows = client.get("/api/leaderboard/rankings/", {"batch": batch.pk, "bootstrap": 0}).json()
    assert sorted(row["item"] for row in rows) == [
        "alpha v1 at T=0.6",
        "alpha v1 at T=1",
        "beta v1 at T=0.6",
        "beta v1 at T=1",
    ]
    ranked = client.get("/api/leaderboard/rankings/", {"batch": batch.pk, "bootstrap": 0, "format": "csv"})
    assert ranked["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(ranked.content.decode())))
    # Two parts (each cell met one other): ranked inside each part, part 1 first.
    assert [(row["item"], row["graph_part"]) for row in table] == [
        ("alpha v1 at T=0.6", "1"),
        ("beta v1 at T=1", "1"),
        ("beta v1 at T=0.6", "2"),
        ("alpha v1 at T=1", "2"),
    ]
    matrix = client.get("/api/leaderboard/matrix/", {"batch": batch.pk, "bootstrap": 0, "format": "csv"})
    cells = list(csv.DictReader(io.StringIO(matrix.content.decode())))
    assert {(c["item"], c["opponent"], c["win_rate"]) for c in cells} >= {
        ("alpha v1 at T=0.6", "beta v1 at T=1", "1.0"),
        ("beta v1 at T=1", "alpha v1 at T=0.6", "0.0"),
    }


def test_a_reward_model_judges_the_same_comparisons(researcher, variants, media):
    alpha, beta, *_ = variants
    batch = BatchFactory()
    run = TrainingRun.objects.create(
        name="rm-1",
        kind="helpfulness",
        dataset=_dataset(),
        base_checkpoint=_checkpoint(),
        status=RunStatus.SUCCEEDED,
        output_path="final",
    )
    comparisons = [labelled(batch, alpha, beta, "a") for _ in range(4)]
    for index, comparison in enumerate(comparisons):
        # The model prefers beta in three of four, and has not scored the last comparison.
        if index == 3:
            continue
        ResponseReward.objects.create(run=run, response=comparison.response_a, reward=0.0 if index else 2.0)
        ResponseReward.objects.create(run=run, response=comparison.response_b, reward=1.0)
    body = (
        client_for(researcher)
        .get("/api/leaderboard/", {"batch": batch.pk, "by": "variant", "judge_run": run.pk, "bootstrap": 10})
        .json()
    )
    judge = body["judge"]
    assert [row["variant"] for row in judge["rows"]] == ["beta v1", "alpha v1"]
    assert judge["n_comparisons"] == 3
    assert body["judge_missing"] == 1
    assert body["judge_agreement"] == pytest.approx(1 / 3)
    assert "has not scored yet" in judge["warnings"][0]


def test_only_researchers_see_the_leaderboard(variants):
    annotator = AnnotatorFactory()
    assert client_for(annotator).get("/api/leaderboard/").status_code == 403
    assert client_for(annotator).get("/api/leaderboard/rankings/", {"format": "csv"}).status_code == 403


def test_bad_parameters_are_refused(researcher):
    client = client_for(researcher)
    assert client.get("/api/leaderboard/", {"by": "nonsense"}).status_code == 400
    assert client.get("/api/leaderboard/", {"batch": 1, "week": "2026-01-05"}).status_code == 400
    assert client.get("/api/leaderboard/", {"batch": 10**20}).status_code == 400
    assert client.post("/api/leaderboard/judgings/", {"run": 10**20}, format="json").status_code == 400


def _dataset():
    from preference_data.models import DatasetBuild

    return DatasetBuild.objects.create(name="d")


def _checkpoint():
    from rewardmodel.models import BaseCheckpoint

    return BaseCheckpoint.objects.create(name="base", path="embedded:x", kind="encoder")


def test_a_variant_without_a_labelled_comparison_is_listed_as_unrated_not_as_a_part(researcher, variants):
    alpha, beta, gamma, _ = variants
    batch = BatchFactory()
    for _ in range(10):
        labelled(batch, alpha, beta, "a")
    ComparisonFactory(batch=batch, response_a=ResponseFactory(variant=gamma), response_b=ResponseFactory(variant=alpha))
    body = client_for(researcher).get("/api/leaderboard/", {"batch": batch.pk, "by": "variant", "bootstrap": 0}).json()
    humans = body["humans"]
    assert humans["graph_parts"] == 1
    assert not any("disconnected" in w for w in humans["warnings"])
    assert any("no labelled comparison in this scope yet: gamma v1" in w for w in humans["warnings"])
    assert [(r["variant"], r["graph_part"], r["rating"] is not None) for r in humans["rows"]][-1] == (
        "gamma v1",
        None,
        False,
    )


def test_the_csv_neutralises_a_variant_name_a_spreadsheet_would_run(researcher):
    sneaky, plain = VariantFactory(name='=HYPERLINK("http://x")'), VariantFactory(name="plain")
    batch = BatchFactory()
    for _ in range(3):
        labelled(batch, sneaky, plain, "a")
    answer = client_for(researcher).get(
        "/api/leaderboard/rankings/", {"batch": batch.pk, "by": "variant", "bootstrap": 0, "format": "csv"}
    )
    rows = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert rows[0]["variant"] == '\'=HYPERLINK("http://x") v1'


def test_the_page_queues_a_judging_and_refuses_a_malformed_run(researcher, media):
    from rewardmodel.models import ResponseJudging
    from tests.helpers import page_client_for

    run = TrainingRun.objects.create(
        name="rm-page",
        kind="helpfulness",
        dataset=_dataset(),
        base_checkpoint=_checkpoint(),
        status=RunStatus.SUCCEEDED,
        output_path="final",
    )
    pages = page_client_for(researcher)
    refused = pages.post("/research/leaderboard/judge/", {"run": "9" * 30, "query": "by=variant"}, follow=True)
    assert "Choose a reward model" in refused.content.decode() and not ResponseJudging.objects.exists()
    queued = pages.post("/research/leaderboard/judge/", {"run": run.pk, "query": "by=variant"})
    assert queued.status_code == 302 and queued["Location"] == "/research/leaderboard/?by=variant"
    assert ResponseJudging.objects.get().run == run
    assert pages.get("/research/leaderboard/judge/").status_code == 405
