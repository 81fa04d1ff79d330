"""The dataset API: researchers build, export, download and import; nobody else can."""

import io
import json

import pyarrow.parquet as pq
import pytest
from rest_framework.test import APIClient

from preference_data.models import DatasetBuild, DatasetExport, ExternalComparison, ExternalSource
from tests.factories import AnnotatorFactory, BatchFactory, UserFactory, VendorManagerFactory
from tests.helpers import client_for

from .labelled import jsonl_file, labelled, trl_records

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]

HH = {
    "chosen": "\n\nHuman: Is it safe to eat raw cookie dough?\n\nAssistant: No: raw flour and eggs carry germs.",
    "rejected": "\n\nHuman: Is it safe to eat raw cookie dough?\n\nAssistant: Yes, always.",
}


@pytest.fixture
def researcher_api():
    return client_for(UserFactory(username="rhea"))


@pytest.fixture
def labelled_batches():
    raters = AnnotatorFactory.create_batch(3)
    helpful, safety = BatchFactory(), BatchFactory(focus="safety")
    for _ in range(4):
        labelled(helpful, raters, [("a", "better", "")] * 3)
        labelled(safety, raters, [("b", "significantly_better", "chosen_safe_other_unsafe")] * 3)
    return helpful, safety


def test_a_researcher_builds_exports_and_downloads(
    researcher_api, labelled_batches, django_capture_on_commit_callbacks
):
    helpful, safety = labelled_batches
    with django_capture_on_commit_callbacks(execute=True):
        created = researcher_api.post(
            "/api/dataset-builds/",
            {
                "name": "api safety",
                "mix": "safety",
                "batches": [helpful.pk, safety.pk],
                "margin_table": "large",
                "held_out_mode": "fraction",
                "test_fraction": 0.0,
            },
            format="json",
        )
    assert created.status_code == 201, created.json()
    build = researcher_api.get(f"/api/dataset-builds/{created.json()['id']}/").json()
    assert build["status"] == "done" and build["percent"] == 100.0
    assert build["counts"]["by_component"]["train"] == {"safety": 4}  # 4 / 9 rounds to no helpfulness pair
    assert build["manifest"]["margin_table"]["name"] == "large"

    with django_capture_on_commit_callbacks(execute=True):
        queued = researcher_api.post(
            "/api/dataset-exports/", {"build": build["id"], "format": "trl", "file_type": "parquet"}, format="json"
        )
    assert queued.status_code == 201
    export = researcher_api.get(f"/api/dataset-exports/{queued.json()['id']}/").json()
    assert export["status"] == "done" and export["content_hash"] == export["manifest"]["content_hash"]
    train = next(f for f in export["files"] if f["split"] == "train")
    download = researcher_api.get(train["url"])
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith('attachment; filename="train.parquet"')
    table = pq.read_table(io.BytesIO(b"".join(download.streaming_content)))
    assert table.num_rows == 4 and set(table.column("margin").to_pylist()) == {3.0}
    manifest = researcher_api.get(export["manifest_url"])
    assert json.loads(b"".join(manifest.streaming_content))["content_hash"] == export["content_hash"]
    listed = researcher_api.get("/api/dataset-exports/", {"build": build["id"]}).json()
    assert [e["id"] for e in listed["results"]] == [export["id"]]


def test_refusals_are_clear_4xx(researcher_api, labelled_batches):
    helpful, _ = labelled_batches
    refused = researcher_api.post(
        "/api/dataset-builds/", {"name": "x", "mix": "safety", "batches": [helpful.pk]}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json() == {
        "detail": "The safety mix needs a safety batch or an imported harmless-style (safety) source.",
        "code": "invalid",
        "field": "mix",
    }
    unknown = researcher_api.post("/api/dataset-builds/", {"name": "x", "batches": [987654]}, format="json")
    assert unknown.status_code == 400 and unknown.json()["detail"] == "No batch with id 987654."
    queued = researcher_api.post("/api/dataset-builds/", {"name": "waiting"}, format="json").json()  # never run here
    conflict = researcher_api.post("/api/dataset-exports/", {"build": queued["id"]}, format="json")
    assert conflict.status_code == 409 and "still being built" in conflict.json()["detail"]


def test_downloads_only_serve_an_exports_own_files(researcher_api, labelled_batches):
    build = DatasetBuild.objects.create(name="b", status="done")
    export = DatasetExport.objects.create(build=build, status="done", files=[{"name": "train.jsonl", "split": "train"}])
    export.directory.mkdir(parents=True)
    (export.directory / "train.jsonl").write_text("{}\n")
    (export.directory.parent / "secret.txt").write_text("not yours")
    assert researcher_api.get(f"/api/dataset-exports/{export.pk}/files/train.jsonl/").status_code == 200
    missing = researcher_api.get(f"/api/dataset-exports/{export.pk}/files/test.jsonl/")
    assert missing.status_code == 404 and "no file named 'test.jsonl'" in missing.json()["detail"]
    assert researcher_api.get(f"/api/dataset-exports/{export.pk}/files/..%2Fsecret.txt/").status_code == 404
    (export.directory / "train.jsonl").unlink()
    assert researcher_api.get(f"/api/dataset-exports/{export.pk}/files/train.jsonl/").status_code == 410


@pytest.mark.parametrize("make_user", [AnnotatorFactory, VendorManagerFactory])
def test_only_researchers_see_build_export_or_import(make_user, labelled_batches):
    build = DatasetBuild.objects.create(name="b", status="done")
    export = DatasetExport.objects.create(build=build, status="done", files=[{"name": "train.jsonl"}])
    other = client_for(make_user())
    for response in (
        other.get("/api/dataset-builds/"),
        other.get(f"/api/dataset-builds/{build.pk}/"),
        other.post("/api/dataset-builds/", {"name": "mine"}, format="json"),
        other.get("/api/dataset-exports/"),
        other.post("/api/dataset-exports/", {"build": build.pk}, format="json"),
        other.get(f"/api/dataset-exports/{export.pk}/files/train.jsonl/"),
        other.get("/api/external-sources/"),
        other.post("/api/external-sources/", {"name": "x", "focus": "safety", "file": jsonl_file([HH])}),
    ):
        assert response.status_code == 403
        assert response.json()["detail"] == "Only researchers can do this."
    assert DatasetBuild.objects.count() == 1 and not ExternalSource.objects.exists()
    assert APIClient().get("/api/dataset-builds/").status_code == 401


def test_import_open_source_data_through_the_api(researcher_api):
    upload = jsonl_file([HH, HH | {"rejected": HH["rejected"].replace("always", "of course")}])
    upload.name = "harmless-base.jsonl"
    created = researcher_api.post("/api/external-sources/", {"name": "hh harmless", "focus": "safety", "file": upload})
    assert created.status_code == 201, created.json()
    assert created.json() | {"id": 0, "sha256": "", "created_at": ""} == {
        "id": 0,
        "name": "hh harmless",
        "focus": "safety",
        "format": "hh_rlhf",
        "file_type": "jsonl",
        "filename": "harmless-base.jsonl",
        "sha256": "",
        "row_count": 2,
        "usage": "train",
        "test_fraction": 0.0,
        "split_seed": 0,
        "created_at": "",
    }

    bad = jsonl_file([*trl_records(2, "q"), {"prompt": "q", "chosen": "a"}])
    bad.name = "broken.jsonl"
    refused = researcher_api.post("/api/external-sources/", {"name": "broken", "focus": "helpfulness", "file": bad})
    assert refused.status_code == 400
    assert refused.json()["field"] == "file"
    assert refused.json()["errors"] == ["line 3 (read as TRL), field rejected: must be a string or a list of messages"]
    assert ExternalSource.objects.count() == 1 and ExternalComparison.objects.count() == 2


def test_builds_with_dawid_skene_labels_and_a_posterior_threshold(
    researcher_api, labelled_batches, django_capture_on_commit_callbacks
):
    helpful, _ = labelled_batches
    with django_capture_on_commit_callbacks(execute=True):
        created = researcher_api.post(
            "/api/dataset-builds/",
            {"name": "ds", "batches": [helpful.pk], "label_source": "dawid_skene", "min_posterior": 0.9},
            format="json",
        )
    assert created.status_code == 201, created.json()
    build = researcher_api.get(f"/api/dataset-builds/{created.json()['id']}/").json()
    assert build["status"] == "done"
    labels = build["manifest"]["labels"]
    assert (labels["source"], labels["min_posterior"]) == ("dawid_skene", 0.9)
    assert labels["dawid_skene"][helpful.name]["converged"]
    assert build["manifest"]["label_rule"].startswith("Dawid-Skene")
    refused = researcher_api.post(
        "/api/dataset-builds/", {"name": "x", "batches": [helpful.pk], "min_posterior": 0.9}, format="json"
    )
    assert refused.status_code == 400 and refused.json()["field"] == "min_posterior"
    unknown = researcher_api.post("/api/dataset-builds/", {"name": "x", "label_source": "mode"}, format="json")
    assert unknown.status_code == 400 and "label_source" in unknown.json()
