"""A best-of-K variant (Llama 2's rejection sampling as a model variant): it wraps another variant
and a reward model, samples K responses on the real SmolLM2, answers the one the reward model
scores highest and records all K; it sits in a pair policy like any variant."""

import pytest

from config.exceptions import InvalidInput
from rewardmodel.scoring import load_reward_model, score_many, sigmoid
from sampling import services
from sampling.models import ModelVariant
from tests.factories import AnnotatorFactory
from tests.rewardmodel.saved import saved_reward_model
from tests.sampling.conftest import make_variant, prompt_batch

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


def best_of(base, run, k=3, **fields):
    return make_variant(
        f"{base.name}-best-of-{k}", backend="best_of_k", base_variant=base, reward_run=run, best_of_k=k, **fields
    )


def test_a_best_of_k_variant_needs_a_sampling_base_a_saved_reward_model_and_k(endpoint_variants, settings):
    base = endpoint_variants[0]
    run = saved_reward_model("rm")
    safety = saved_reward_model("safety-rm", kind="safety")
    with pytest.raises(InvalidInput, match="Choose the variant"):
        make_variant("no-base", backend="best_of_k", reward_run=run, best_of_k=4)
    with pytest.raises(InvalidInput, match="K must be between 2 and 8"):
        best_of(base, run, k=9)
    with pytest.raises(InvalidInput, match="reward model that ranks"):
        make_variant("no-rm", backend="best_of_k", base_variant=base, best_of_k=4)
    run.output_path = ""
    run.save()
    with pytest.raises(InvalidInput, match="no saved model yet"):
        best_of(base, run)
    run.output_path = "final"
    run.save()
    with pytest.raises(InvalidInput, match="is a helpfulness model"):
        best_of(base, run, safety_run=run)
    with pytest.raises(InvalidInput, match="belong to a best-of-K variant only"):
        make_variant("plain", backend="openai", base_url="http://x/v1", api_model="m", best_of_k=4)
    wrapped = best_of(base, run, safety_run=safety)
    with pytest.raises(InvalidInput, match="cannot sample new responses itself"):
        best_of(wrapped, run)
    assert wrapped.best_of_k == 3 and wrapped.base_variant == base
    assert wrapped in services.usable_variants()


def test_best_of_k_answers_the_highest_reward_sample_and_records_all_k(
    smollm_variants, django_capture_on_commit_callbacks
):
    base = smollm_variants[0]
    run = saved_reward_model("rm", seed=3)
    wrapped = best_of(base, run, k=3)
    batch = prompt_batch([wrapped, base], temperatures=[0.7, 1.0])
    with django_capture_on_commit_callbacks(execute=True):
        job = services.prompt_submit(annotator=AnnotatorFactory(), batch=batch, text="Name a fruit that is red.")
    job.refresh_from_db()
    assert job.status == "done", job.error_detail
    comparison = job.comparison
    mine = next(r for r in (comparison.response_a, comparison.response_b) if r.variant_id == wrapped.pk)
    other = comparison.response_b if mine == comparison.response_a else comparison.response_a
    assert other.variant_id == base.pk

    record = mine.generation["backend"]["best_of_k"]
    candidates = record["candidates"]
    assert record["k"] == 3 and len(candidates) == 3
    assert record["reward_run"]["id"] == run.pk and record["base_variant"]["id"] == base.pk
    assert [c["seed"] for c in candidates] == [record["request_seed"] + i for i in range(3)]
    assert len({c["text"] for c in candidates}) > 1  # three different samples at this temperature
    # The sample answered is the one the reward model, loaded on its own here, scores highest.
    model, tokenizer = load_reward_model(run.model_dir)
    context = [{"role": "user", "content": "Name a fruit that is red."}]
    rewards = [sigmoid(r) for r in score_many(model, tokenizer, [(context, c["text"]) for c in candidates])]
    assert [c["reward"] for c in candidates] == pytest.approx(rewards, abs=1e-5)
    best = max(range(3), key=lambda i: rewards[i])
    assert record["chosen"] == best
    assert mine.text == candidates[best]["text"]
    # It samples with its base variant's prompt and settings, at the pair's temperature.
    assert mine.generation["settings"]["system_prompt"] == base.system_prompt
    assert mine.max_new_tokens == base.max_new_tokens
    assert mine.temperature in (0.7, 1.0)


def test_a_best_of_k_variant_is_registered_through_the_api_and_shown_to_researchers(researcher, endpoint_variants):
    from tests.helpers import client_for, page_client_for

    base = endpoint_variants[0]
    run = saved_reward_model("rm")
    api = client_for(researcher)
    created = api.post(
        "/api/model-variants/",
        {
            "name": "terse-best-of-4",
            "backend": "best_of_k",
            "base_variant": base.pk,
            "reward_run": run.pk,
            "best_of_k": 4,
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["backend"], body["base_variant"], body["reward_run"], body["best_of_k"]) == (
        "best_of_k",
        base.pk,
        run.pk,
        4,
    )
    refused = api.post(
        "/api/model-variants/",
        {"name": "no-k", "backend": "best_of_k", "base_variant": base.pk, "reward_run": run.pk},
        format="json",
    )
    assert refused.status_code == 400 and "K must be between 2" in str(refused.json())
    page = page_client_for(researcher).get(f"/research/models/{body['id']}/")
    assert page.status_code == 200
    assert "Best of 4" in page.content.decode() and run.name in page.content.decode()
    listing = page_client_for(researcher).get("/research/models/").content.decode()
    assert "best of 4" in listing and f"{base} ranked by rm" in listing


def test_warming_a_batch_loads_the_base_model_of_its_best_of_k_variant():
    base = make_variant("local", backend="transformers", checkpoint_path="/models/local")
    wrapped = best_of(base, saved_reward_model("rm"))
    batch = prompt_batch([wrapped])
    assert services.sampling_warm_up(batch=batch) == [base.pk]


def test_the_variants_page_registers_a_best_of_k_variant(researcher, endpoint_variants):
    from tests.helpers import page_client_for

    base, run = endpoint_variants[0], saved_reward_model("page-rm")
    pages = page_client_for(researcher)
    assert "Register a best-of-K variant" in pages.get("/research/models/").content.decode()
    form = {"kind": "best_of_k", "name": "terse-best-of-5", "base_variant": base.pk, "reward_run": run.pk}
    refused = pages.post("/research/models/", {**form, "best_of_k": 1})
    assert refused.status_code == 400 and not ModelVariant.objects.filter(name="terse-best-of-5").exists()
    created = pages.post("/research/models/", {**form, "best_of_k": 5})
    assert created.status_code == 302
    variant = ModelVariant.objects.get(name="terse-best-of-5")
    assert (variant.backend, variant.base_variant, variant.reward_run, variant.best_of_k) == ("best_of_k", base, run, 5)
