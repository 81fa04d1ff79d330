"""Pairs chosen by a reward model on the real SmolLM2: the policy samples K candidates across its
variants and temperatures, the reward model scores them, the rule picks the pair, and the
comparison's responses record the rule, K and every score; the policy refuses what cannot run."""

import pytest

from config.exceptions import InvalidInput
from rewardmodel.scoring import load_reward_model, score_many, sigmoid
from sampling import services
from sampling.pair_rules import Candidate, choose_pair
from tests.factories import AnnotatorFactory, BatchFactory
from tests.helpers import client_for
from tests.rewardmodel.saved import saved_reward_model
from tests.sampling.conftest import prompt_batch

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


def test_the_policy_refuses_a_rule_without_its_models(endpoint_variants):
    batch = BatchFactory(prompt_mode="annotator")
    helpful, safety = saved_reward_model("h"), saved_reward_model("s", kind="safety")
    common = {"batch": batch, "variant_ids": [v.pk for v in endpoint_variants], "temperature_mode": "set"}
    common |= {"temperatures": [0.6, 1.0], "updated_by": None}
    with pytest.raises(InvalidInput, match="reward model that scores"):
        services.pair_policy_set(**common, selection="uncertain")
    with pytest.raises(InvalidInput, match="between 3 and 8"):
        services.pair_policy_set(**common, selection="uncertain", candidates=2, reward_run=helpful)
    with pytest.raises(InvalidInput, match="choose both"):
        services.pair_policy_set(**common, selection="disagree", reward_run=helpful)
    with pytest.raises(InvalidInput, match="in that order"):
        services.pair_policy_set(**common, selection="disagree", reward_run=safety, safety_run=helpful)
    policy = services.pair_policy_set(**common, selection="disagree", reward_run=helpful, safety_run=safety)
    snapshot = services.policy_snapshot(policy)
    assert (snapshot["selection"], snapshot["candidates"], snapshot["reward_run"], snapshot["safety_run"]) == (
        "disagree",
        4,
        helpful.pk,
        safety.pk,
    )
    # Back to random: the models are let go.
    policy = services.pair_policy_set(**common, reward_run=helpful)
    assert (policy.selection, policy.reward_run) == ("random", None)


def test_the_api_sets_a_reward_model_policy(researcher, endpoint_variants):
    batch = BatchFactory(prompt_mode="annotator")
    run = saved_reward_model("h")
    answer = client_for(researcher).put(
        f"/api/pair-policies/{batch.pk}/",
        {
            "variants": [v.pk for v in endpoint_variants],
            "temperatures": [0.6, 1.0],
            "selection": "best_worst",
            "candidates": 5,
            "reward_run": run.pk,
        },
        format="json",
    )
    assert answer.status_code == 200, answer.json()
    assert (answer.json()["selection"], answer.json()["candidates"], answer.json()["reward_run"]) == (
        "best_worst",
        5,
        run.pk,
    )


def test_an_uncertainty_policy_compares_the_pair_the_reward_model_can_least_tell_apart(
    smollm_variants, django_capture_on_commit_callbacks
):
    run = saved_reward_model("rm", seed=5)
    batch = prompt_batch(smollm_variants, temperatures=[0.6, 0.9, 1.2])
    services.pair_policy_set(
        batch=batch,
        variant_ids=[v.pk for v in smollm_variants],
        temperature_mode="set",
        temperatures=[0.6, 0.9, 1.2],
        max_new_tokens=12,
        selection="uncertain",
        candidates=4,
        reward_run=run,
        updated_by=None,
    )
    prompt = "Suggest a name for a cat."
    with django_capture_on_commit_callbacks(execute=True):
        job = services.prompt_submit(annotator=AnnotatorFactory(), batch=batch, text=prompt)
    job.refresh_from_db()
    assert job.status == "done", job.error_detail
    a, b = job.comparison.response_a, job.comparison.response_b
    record = a.generation["pair_selection"]
    assert record == b.generation["pair_selection"]
    assert (record["rule"], record["k"], record["reward_run"], len(record["candidates"])) == ("uncertain", 4, run.pk, 4)
    first, second = record["chosen"]
    assert [a.text, b.text] == [record["candidates"][first]["text"], record["candidates"][second]["text"]]
    assert a.variant_id != b.variant_id and a.temperature != b.temperature

    # The scores are the reward model's, and the pair is the smallest gap the protocol allows.
    model, tokenizer = load_reward_model(run.model_dir)
    context = [{"role": "user", "content": prompt}]
    rewards = [sigmoid(r) for r in score_many(model, tokenizer, [(context, c["text"]) for c in record["candidates"]])]
    assert [c["reward"] for c in record["candidates"]] == pytest.approx(rewards, abs=1e-5)
    pool = [
        Candidate(i, c["variant"]["id"], c["temperature"], c["text"], rewards[i])
        for i, c in enumerate(record["candidates"])
    ]
    expected = choose_pair(pool, "uncertain")
    assert [expected.first, expected.second] == record["chosen"]
    assert record["gap"] == pytest.approx(abs(rewards[first] - rewards[second]), abs=1e-5)
    assert {c["variant"]["name"] for c in record["candidates"]} == {"smollm2-concise", "smollm2-friendly"}


def test_the_sampling_page_sets_and_shows_a_reward_model_policy(researcher, endpoint_variants):
    from tests.helpers import page_client_for

    batch = BatchFactory(prompt_mode="annotator")
    run = saved_reward_model("helpful-rm")
    pages = page_client_for(researcher)
    url = f"/research/batches/{batch.pk}/sampling/"
    form = {"variants": [v.pk for v in endpoint_variants], "temperature_mode": "set", "temperatures": "0.6, 1.0"}
    form |= {"max_resample_attempts": 3, "selection": "uncertain", "candidates": 4}
    refused = pages.post(url, form)
    assert refused.status_code == 400 and "reward model that scores" in refused.content.decode()
    assert pages.post(url, {**form, "reward_run": run.pk}).status_code == 302
    summary = pages.get(f"/research/batches/{batch.pk}/").content.decode()
    assert "pairs chosen by helpful-rm" in summary and "of 4 candidates" in summary
