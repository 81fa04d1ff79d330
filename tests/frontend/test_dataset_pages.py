"""The dataset pages: a researcher builds, exports and downloads in Chromium (a real worker runs the
build and the export, as in the demo); others are kept out."""

import json

import datasets
import pytest
from django.test import Client

from preference_data.models import DatasetBuild, DatasetExport, ExternalSource
from tests.factories import AnnotatorFactory, BatchFactory, UserFactory
from tests.helpers import log_in
from tests.preference_data.labelled import jsonl_file, labelled

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_researcher_builds_a_helpfulness_dataset_and_downloads_it(page, live_server, tmp_path, embedded_worker):
    raters = AnnotatorFactory.create_batch(3)
    helpful, safety = BatchFactory(name="Week 9 help"), BatchFactory(name="Week 9 safe", focus="safety")
    for i in range(6):
        labelled(helpful, raters, [("a", "better", "")] * 3, prompt=f"Helpful question {i}?")
    for i in range(4):
        labelled(safety, raters, [("b", "significantly_better", "chosen_safe_other_unsafe")] * 3, prompt=f"Risky {i}?")
    labelled(helpful, raters[:2], [("a", "better", "")] * 2)  # not complete yet: excluded, and counted
    UserFactory(username="rosa")

    log_in(page, live_server, "rosa")
    page.click("nav >> text=Datasets")
    page.fill("input[name=name]", "Helpfulness RM, week 9")
    page.select_option("select[name=mix]", "helpfulness")
    page.select_option("select[name=margin_table]", "large")
    page.select_option("select[name=held_out_mode]", "fraction")
    page.fill("input[name=test_fraction]", "0")
    page.click("text=Build dataset")

    page.wait_for_selector("#train-count")
    assert page.inner_text("#train-count") == "10"  # 6 helpfulness + an equal 6 wanted from the 4 safety: all 4
    assert page.inner_text("#excluded-count") == "1"
    incomplete = page.locator("#exclusions tr", has_text="incomplete")
    assert incomplete.locator("td.num").first.inner_text() == "1"
    strength_row = page.locator("#by-strength tr", has_text="Significantly better")
    assert strength_row.locator("td.num").all_inner_texts() == ["3.00", "4", "0"]
    assert "(2 short of the target 6)" in page.inner_text("#by-component + p")

    page.select_option("select[name=file_type]", "parquet")
    page.click("#exports button[type=submit]")
    page.wait_for_selector("#exports a.download")
    with page.expect_download() as download:
        page.click("#exports a.download >> text=train.parquet")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name.endswith("helpfulness-rm-week-9-train.parquet")
    loaded = datasets.load_dataset("parquet", data_files=str(path), cache_dir=str(tmp_path / "hf"))["train"]
    assert len(loaded) == 10
    assert sorted(set(loaded["margin"])) == [2.0, 3.0]
    assert loaded[0]["chosen"][0]["role"] == "assistant" and loaded[0]["prompt"][0]["role"] == "user"

    page.click("details > summary")
    manifest = json.loads(page.inner_text("#manifest"))
    assert manifest["mix"]["name"] == "helpfulness" and manifest["exclusions"]["by_reason"]["incomplete"] == 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_page_follows_a_running_build_until_it_is_done(page, live_server):
    UserFactory(username="rosa")
    build = DatasetBuild.objects.create(name="Big one", status="running", progress_done=2_500, progress_total=10_000)
    log_in(page, live_server, "rosa")
    page.goto(f"{live_server.url}/research/datasets/{build.pk}/")
    page.wait_for_function("document.querySelector('[data-progress-text]').textContent.includes('2,500 / 10,000')")
    assert page.locator("[data-status]").inner_text() == "Running"
    DatasetBuild.objects.filter(pk=build.pk).update(
        status="done", progress_done=10_000, counts={"by_split": {"train": 9_000, "test": 1_000}, "total": 10_000}
    )
    page.wait_for_selector("#train-count")  # reloaded once the API said done
    assert page.inner_text("#train-count") == "9000"


def test_only_researchers_reach_the_dataset_pages_and_files(client: Client):
    build = DatasetBuild.objects.create(name="b", status="done")
    export = DatasetExport.objects.create(build=build, status="done", files=[{"name": "train.jsonl"}])
    export.directory.mkdir(parents=True)
    (export.directory / "train.jsonl").write_text("{}\n")
    client.force_login(AnnotatorFactory())
    for url in (
        "/research/datasets/",
        f"/research/datasets/{build.pk}/",
        f"/research/datasets/exports/{export.pk}/files/train.jsonl",
    ):
        assert client.get(url).status_code == 403
    assert client.post("/research/datasets/", {"name": "sneaky"}).status_code == 403
    client.force_login(UserFactory())
    response = client.get(f"/research/datasets/exports/{export.pk}/files/train.jsonl")
    assert response.status_code == 200 and response["Content-Disposition"].endswith('-train.jsonl"')
    assert client.get(f"/research/datasets/exports/{export.pk}/files/manifest.json").status_code == 410


def test_a_refused_import_lists_the_lines_and_writes_nothing(client: Client):
    client.force_login(UserFactory())
    upload = jsonl_file([{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "a"}])
    upload.name = "pairs.jsonl"
    response = client.post(
        "/research/datasets/import/", {"name": "mine", "focus": "helpfulness", "format": "auto", "file": upload}
    )
    assert response.status_code == 400
    assert "line 2 (read as TRL), field rejected: must be a string or a list of messages" in response.content.decode()
    assert not ExternalSource.objects.exists()


def test_the_build_form_takes_dawid_skene_labels_and_a_minimum_posterior(client: Client):
    batch = BatchFactory()
    client.force_login(UserFactory())
    page = client.get("/research/datasets/").content.decode()
    assert 'name="label_source"' in page and 'name="min_posterior"' in page
    form = {"name": "estimated", "batches": [batch.pk], "label_source": "dawid_skene", "min_posterior": "0.9"}
    form |= {"mix": "none", "margin_table": "small", "held_out_mode": "fraction", "test_fraction": "0"}
    response = client.post("/research/datasets/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    build = DatasetBuild.objects.get(name="estimated")
    assert (build.selection["label_source"], build.selection["min_posterior"]) == ("dawid_skene", 0.9)
    refused = client.post("/research/datasets/", form | {"name": "refused", "label_source": "majority"})
    assert refused.status_code == 400 and "Dawid-Skene" in refused.content.decode()
