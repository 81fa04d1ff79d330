"""Starting a training run: validated without torch in the web process, and at most once per
idempotency key (issue 12). The first request of a fresh server process used to take 17 s
(torch imported while validating), long enough for a client to time out and retry."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from preference_data.models import DatasetBuild, DatasetPair, JobStatus
from rewardmodel.models import BaseCheckpoint, ModelKind, TrainingRun
from tests.factories import ComparisonFactory
from tests.helpers import client_for, page_client_for

ROOT = Path(__file__).resolve().parents[2]


def ready_dataset(researcher, name="ready") -> DatasetBuild:
    build = DatasetBuild.objects.create(name=name, status=JobStatus.DONE, created_by=researcher)
    comparison = ComparisonFactory()
    DatasetPair.objects.create(
        build=build,
        split="train",
        component="helpfulness",
        comparison=comparison,
        chosen_response=comparison.response_a,
        rejected_response=comparison.response_b,
        strength="better",
        margin=0.66,
        sample_key=0.5,
    )
    return build


def checkpoint() -> BaseCheckpoint:
    return BaseCheckpoint.objects.create(name="encoder", path="/models/encoder", kind=ModelKind.ENCODER)


@pytest.mark.django_db
def test_a_retried_request_with_the_same_key_returns_the_first_run(researcher):
    api = client_for(researcher)
    dataset, base = ready_dataset(researcher), checkpoint()
    asked = {"dataset": dataset.pk, "base_checkpoint": base.pk, "idempotency_key": "run-1"}
    first = api.post("/api/training-runs/", asked, format="json")
    again = api.post("/api/training-runs/", asked, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert TrainingRun.objects.count() == 1

    other = ready_dataset(researcher, name="other")
    reused = api.post("/api/training-runs/", {**asked, "dataset": other.pk}, format="json")
    assert reused.status_code == 409 and reused.json()["field"] == "idempotency_key"
    assert TrainingRun.objects.count() == 1

    # Keys belong to their sender; without a key every request is a new run.
    colleague = client_for(type(researcher).objects.create(username="colleague", role=researcher.role))
    assert colleague.post("/api/training-runs/", asked, format="json").status_code == 201
    plain = {"dataset": dataset.pk, "base_checkpoint": base.pk}
    assert api.post("/api/training-runs/", plain, format="json").status_code == 201
    assert api.post("/api/training-runs/", plain, format="json").status_code == 201
    assert TrainingRun.objects.count() == 4


SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from accounts.models import Role, User
    from tests.helpers import client_for
    from tests.rewardmodel.test_run_creation import checkpoint, ready_dataset
    researcher = User.objects.create(username="r", role=Role.RESEARCHER)
    dataset, base = ready_dataset(researcher), checkpoint()
    assert "torch" not in sys.modules, "torch was imported before the request"
    response = client_for(researcher).post(
        "/api/training-runs/",
        {"dataset": dataset.pk, "base_checkpoint": base.pk, "hyperparameters": {"learning_rate": 3e-5}},
        format="json",
    )
    assert response.status_code == 201, response.content
    bad = client_for(researcher).post(
        "/api/training-runs/",
        {"dataset": dataset.pk, "base_checkpoint": base.pk, "hyperparameters": {"batch_pairs": 0}},
        format="json",
    )
    assert bad.status_code == 400, bad.content
    print("torch imported:", "torch" in sys.modules)
    """
)


def test_the_first_run_request_of_a_fresh_process_does_not_import_torch(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PREFLAB_DEMO": "1",
        "PREFLAB_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        "PREFLAB_MEDIA_ROOT": str(tmp_path / "media"),
        "DJANGO_SECRET_KEY": "a-test-key-" + "x" * 50,
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torch imported: False" in done.stdout


@pytest.mark.django_db
def test_the_new_run_form_submitted_twice_starts_one_run(researcher):
    dataset, base = ready_dataset(researcher), checkpoint()
    client = page_client_for(researcher)
    form = client.get(f"/research/reward-models/new/?dataset={dataset.pk}").context["form"]
    data = {field.html_name: field.value() for field in form if field.value() is not None}
    data["base_checkpoint"] = base.pk
    first = client.post("/research/reward-models/new/", data)
    second = client.post("/research/reward-models/new/", data)  # a double click, or the page resubmitted
    run = TrainingRun.objects.get()
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == f"/research/reward-models/{run.pk}/"
    fresh = client.get("/research/reward-models/new/").context["form"]
    assert fresh["request_key"].value() != data["request_key"]  # each rendered form has its own key
