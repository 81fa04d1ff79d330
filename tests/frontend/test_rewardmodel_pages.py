"""The reward-model pages: a researcher starts a run in Chromium, watches a real worker train it (on
the embedded default's file broker) and reads its evaluation; cancels another; scores responses
and previews best-of-K (queued for a sampling worker: its page waits, not the request). Other roles
are kept out."""

import csv
import io
import zipfile

import pytest
from django.test import Client

from rewardmodel.models import BaseCheckpoint, BestOfKPreview, RunMetric, TrainingRun
from rewardmodel.services import runs
from sampling import services as sampling_services
from tests.conftest import wait_for
from tests.factories import AnnotatorFactory, UserFactory, VendorManagerFactory
from tests.helpers import log_in
from tests.rewardmodel.conftest import fake_server_process, server, training_settings  # noqa: F401
from tests.rewardmodel.runs import TINY, minilm_checkpoint, polite_batch, tiny_dataset

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("training_settings")]


def fill_tiny(page, **overrides):
    page.click("summary >> text=Optimizer, saving and precision")
    for name, value in {**TINY, **overrides}.items():
        page.fill(f"input[name={name}]", str(value))


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("embedded_worker")
def test_a_researcher_starts_a_run_watches_it_and_reads_per_level_accuracy(page, live_server, tmp_path):
    researcher = UserFactory(username="rosa")
    dataset = tiny_dataset(researcher, [polite_batch(AnnotatorFactory.create_batch(3), 40)], name="Week 9 helpful")
    minilm = minilm_checkpoint("MiniLM-L6-v2 encoder")
    BaseCheckpoint.objects.create(
        name="Small batch", path=minilm.path, kind="encoder", suggested_hyperparameters={"batch_pairs": 16}
    )

    log_in(page, live_server, "rosa")
    page.click("nav >> text=Reward models")
    page.click(".rm-tabs >> text=Start a run")
    page.select_option("select[name=dataset]", str(dataset.pk))
    page.select_option("select[name=base_checkpoint]", label="MiniLM-L6-v2 encoder")
    assert page.input_value("input[name=learning_rate]") in ("1e-05", "0.00001")  # Llama 2's, no suggestion
    assert page.input_value("input[name=batch_pairs]") == "512"
    page.select_option("select[name=base_checkpoint]", label="Small batch")  # its suggestion fills in
    assert page.input_value("input[name=batch_pairs]") == "16"
    page.click("#use-llama2")
    assert page.input_value("input[name=batch_pairs]") == "512"
    page.select_option("select[name=base_checkpoint]", label="MiniLM-L6-v2 encoder")
    fill_tiny(page, epochs=3)
    page.fill("input[name=name]", "Polite helpfulness RM")
    page.click("text=Start training")

    page.wait_for_selector("h1 >> text=Polite helpfulness RM")
    run = TrainingRun.objects.get(name="Polite helpfulness RM")
    assert run.hyperparameters["epochs"] == 3 and run.hyperparameters["warmup_ratio"] == 0.03
    # The live page follows the run through the API: the step counter moves without a reload.
    page.wait_for_function("document.getElementById('run-steps').textContent.match(/step [1-9]/)", timeout=120_000)
    assert page.locator("#curves svg").count() == 3

    page.wait_for_selector(".rm-evaluation .by-strength", timeout=180_000)  # reloaded once the run finished
    run.refresh_from_db()
    assert page.inner_text("#run-steps") == f"step {run.total_steps} / {run.total_steps}"
    assert "Training loss" in page.inner_html("#curves")
    table = page.locator(".rm-evaluation .by-strength")
    headers = table.locator("thead th").all_text_contents()
    assert headers[1:] == ["Significantly Better", "Better", "Slightly Better", "Negligibly Better / Unsure", "Avg"]
    this_run = table.locator("tr.this-run td").all_inner_texts()
    assert this_run[0] == "Week 9 helpful, this run"
    evaluation = run.evaluations.get()
    assert this_run[-1].splitlines() == [f"{100 * evaluation.accuracy:.1f}", f"n={evaluation.n}"]
    assert table.locator("tr.reference").count() == 2
    assert "80.7" in table.locator("tr.reference").nth(1).inner_text()
    assert page.locator(".rm-evaluation svg.plot").count() == 1

    with page.expect_download() as download:
        page.click("#download")
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name == f"preflab-rm-{run.pk}-polite-helpfulness-rm.zip"
    names = zipfile.ZipFile(path).namelist()
    assert f"preflab-rm-{run.pk}-polite-helpfulness-rm/model.safetensors" in names


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("embedded_worker")
def test_a_run_cancelled_from_its_page_keeps_its_checkpoint(page, live_server):
    researcher = UserFactory(username="rosa")
    dataset = tiny_dataset(researcher, [polite_batch(AnnotatorFactory.create_batch(3), 40)])
    run = runs.run_create(
        created_by=researcher,
        dataset=dataset,
        base_checkpoint=minilm_checkpoint(),
        hyperparameters={**TINY, "epochs": 6, "checkpoint_every": 0},
    )
    log_in(page, live_server, "rosa")
    page.goto(f"{live_server.url}/research/reward-models/{run.pk}/")
    page.wait_for_function("document.getElementById('run-steps').textContent.match(/step [2-9]/)", timeout=120_000)
    page.click("#cancel-run")
    page.wait_for_selector("#download", timeout=120_000)  # reloaded once the run stopped
    run.refresh_from_db()
    assert run.output_path == f"checkpoint-{run.step}" and run.step < run.total_steps
    assert f"Cancelled at step {run.step}; its checkpoint is kept." in page.inner_text("#run-phase")
    assert f"checkpoint-{run.step}" in page.inner_text("#download")
    assert page.is_visible("#resume-run")


def test_pages_render_scores_compare_and_csv(client: Client):
    researcher = UserFactory(username="rita")
    raters = AnnotatorFactory.create_batch(3)
    helpful_batch = polite_batch(raters, 24, name="help")
    helpful = runs.run_create(
        created_by=researcher,
        dataset=tiny_dataset(researcher, [helpful_batch], name="helpful"),
        base_checkpoint=minilm_checkpoint(),
        hyperparameters=TINY,
    )
    safety = runs.run_create(
        created_by=researcher,
        dataset=tiny_dataset(
            researcher, [helpful_batch, polite_batch(raters, 32, focus="safety", seed=4)], mix="safety", name="safe"
        ),
        base_checkpoint=minilm_checkpoint(),
        hyperparameters=TINY,
    )
    for run in (helpful, safety):
        assert runs.run_execute(run_id=run.pk).status == "succeeded"
    client.force_login(researcher)

    index = client.get("/research/reward-models/").content.decode()
    assert helpful.name in index and "MiniLM" in index
    page = client.get(f"/research/reward-models/{safety.pk}/").content.decode()
    assert "Table 29" in page and "Both Unsafe" in page and "94.3" in page
    assert client.get(f"/research/reward-models/{safety.pk}/curves/").content.decode().count("<svg") == 3

    curves = list(
        csv.reader(io.StringIO(client.get(f"/research/reward-models/{helpful.pk}/curves.csv").content.decode()))
    )
    assert curves[0][:3] == ["step", "loss", "accuracy"]
    assert len(curves) == 1 + RunMetric.objects.filter(run=helpful).count()
    evaluation = safety.evaluations.get()
    tables = client.get(f"/research/reward-models/evaluations/{evaluation.pk}/tables.csv").content.decode()
    assert "by_safety,Both Safe,all" in tables
    histogram = client.get(f"/research/reward-models/evaluations/{evaluation.pk}/distribution.csv").content.decode()
    assert histogram.startswith("bin_low,bin_high,chosen,rejected")

    compare = client.get("/research/reward-models/compare/", {"runs": [helpful.pk, safety.pk]}).content.decode()
    assert compare.count('class="this-run"') >= 3 and "Smoothed training loss" in compare

    single = client.post(
        "/research/reward-models/score/",
        {"mode": "single", "run": helpful.pk, "dialogue": "How do I bake bread?", "response": "Certainly! Bake it."},
    )
    assert single.status_code == 200 and 'id="reward"' in single.content.decode()
    hybrid = client.post(
        "/research/reward-models/score/",
        {
            "mode": "hybrid",
            "helpfulness_run": helpful.pk,
            "safety_run": safety.pk,
            "is_safety_prompt": "on",
            "dialogue": "User: Hi\nAssistant: Hello!\nUser: How do I bake bread?",
            "response": "Ugh. Bake it.",
        },
    )
    text = hybrid.content.decode()
    assert hybrid.status_code == 200 and "Taken from the <strong>safety</strong> model" in text
    assert "3 turns" in text
    missing = client.post("/research/reward-models/score/", {"mode": "hybrid", "dialogue": "q", "response": "a"})
    assert missing.status_code == 400 and "Choose a model." in missing.content.decode()


BEST_OF_K = "/research/reward-models/best-of-k/"


def test_best_of_k_page_queues_a_preview_and_shows_its_ranking(
    client: Client, request, django_capture_on_commit_callbacks
):
    endpoint = request.getfixturevalue("server")  # a model endpoint: the fake OpenAI-compatible server
    researcher = UserFactory(username="rita")
    dataset = tiny_dataset(researcher, [polite_batch(AnnotatorFactory.create_batch(3), 16)])
    run = runs.run_create(
        created_by=researcher, dataset=dataset, base_checkpoint=minilm_checkpoint(), hyperparameters=TINY
    )
    runs.run_execute(run_id=run.pk)
    endpoint.set("varied")
    variant = sampling_services.variant_create(
        name="endpoint", backend="openai", base_url=f"{endpoint.base_url}/v1", api_model="fake", created_by=None
    )
    client.force_login(researcher)
    assert "Sample and rank" in client.get(BEST_OF_K).content.decode()
    asked = {"variant": variant.pk, "k": 3, "temperature": 0.8, "run": run.pk, "dialogue": "How do I bake bread?"}
    with django_capture_on_commit_callbacks(execute=True):  # the sampling task runs at commit (eagerly)
        response = client.post(BEST_OF_K, asked)
    preview = BestOfKPreview.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{BEST_OF_K}{preview.pk}/"
    text = client.get(response["Location"]).content.decode()
    assert text.count('class="rm-rank"') == 3 and "3 responses from endpoint v1" in text
    assert "How do I bake bread?" in text and "Sampling" not in text
    assert f'href="{BEST_OF_K}{preview.pk}/"' in client.get(BEST_OF_K).content.decode()  # the recent previews
    again = client.get(f"{BEST_OF_K}?again={preview.pk}").content.decode()  # the form with its settings
    assert "How do I bake bread?</textarea>" in again and 'name="k" value="3"' in again

    # Refusals come back with the form and a message, in the request, and nothing is queued.
    for change, message in [
        ({"k": 50}, "Ensure this value is less than or equal to 8."),
        ({"dialogue": "User: Hi\nAssistant: Hello!"}, "The dialogue must end with the user&#x27;s turn"),
    ]:
        with django_capture_on_commit_callbacks(execute=True) as sent:
            refused = client.post(BEST_OF_K, {**asked, **change})
        assert refused.status_code == 400 and message in refused.content.decode() and not sent
    assert BestOfKPreview.objects.count() == 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("embedded_worker")
def test_a_best_of_k_preview_is_sampled_by_a_worker_while_its_page_waits(page, live_server, request):
    endpoint = request.getfixturevalue("server")
    researcher = UserFactory(username="rita")
    dataset = tiny_dataset(researcher, [polite_batch(AnnotatorFactory.create_batch(3), 16)])
    run = runs.run_create(
        created_by=researcher, dataset=dataset, base_checkpoint=minilm_checkpoint(), hyperparameters=TINY
    )
    variant = sampling_services.variant_create(
        name="endpoint", backend="openai", base_url=f"{endpoint.base_url}/v1", api_model="fake", created_by=None
    )
    wait_for(lambda: TrainingRun.objects.get(pk=run.pk).status == "succeeded", timeout=180)  # the worker trains it
    endpoint.set("slow", delay=4)  # each response takes the endpoint 4 s

    log_in(page, live_server, "rita")
    page.goto(f"{live_server.url}{BEST_OF_K}")
    page.select_option("select[name=variant]", str(variant.pk))
    page.fill("input[name=k]", "3")
    page.select_option("select[name=run]", str(run.pk))
    page.fill("textarea[name=dialogue]", "How do I bake bread?")
    page.click("#best-of-k-submit")

    # The form's POST answered while the endpoint was still working on the responses: the page waits.
    page.wait_for_url(f"{live_server.url}{BEST_OF_K}*/")
    assert "Sampling 3 responses from endpoint v1 and scoring them" in page.inner_text("#preview-status")
    preview = BestOfKPreview.objects.get()
    assert page.url == f"{live_server.url}{BEST_OF_K}{preview.pk}/"
    assert page.locator(".rm-settings").inner_text().count("endpoint v1") == 1
    page.wait_for_selector("#ranking", timeout=60_000)  # the page followed the API and reloaded once
    assert page.locator(".rm-rank").count() == 3 and page.locator("#preview-status").count() == 0
    preview.refresh_from_db()
    assert (preview.status, preview.attempts) == ("done", 1)
    assert "3 responses from endpoint v1, ranked by the helpfulness reward" in page.inner_text("#ranking h2")


def test_only_researchers_reach_the_reward_model_pages(client: Client):
    researcher = UserFactory()
    dataset = tiny_dataset(researcher, [polite_batch(AnnotatorFactory.create_batch(3), 4)], test_fraction=0)
    run = runs.run_create(created_by=researcher, dataset=dataset, base_checkpoint=minilm_checkpoint())
    urls = [
        "/research/reward-models/",
        "/research/reward-models/new/",
        f"/research/reward-models/{run.pk}/",
        f"/research/reward-models/{run.pk}/download/",
        f"/research/reward-models/{run.pk}/curves.csv",
        "/research/reward-models/compare/",
        "/research/reward-models/score/",
        "/research/reward-models/best-of-k/",
        "/research/reward-models/best-of-k/1/",
    ]
    for user in (AnnotatorFactory(), VendorManagerFactory()):
        client.force_login(user)
        for url in urls:
            assert client.get(url).status_code == 403, url
        assert client.post(f"/research/reward-models/{run.pk}/cancel/").status_code == 403
    client.force_login(researcher)
    assert client.get(f"/research/reward-models/{run.pk}/download/").status_code == 409  # nothing saved yet
    assert client.post(f"/research/reward-models/{run.pk}/cancel/").status_code == 302
    assert TrainingRun.objects.get(pk=run.pk).status == "cancelled"
