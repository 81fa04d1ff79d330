"""A reward model as judge: a judging scores every response of a batch's comparisons (with the
dialogue before it) exactly as `score_many` does, stores the rewards, and a second judging scores
only what is new; the leaderboard then ranks by them."""

import pytest

from preference_data.models import JobStatus
from rewardmodel.models import ResponseJudging, ResponseReward
from rewardmodel.scoring import load_reward_model, score_many
from rewardmodel.services import judging
from tests.factories import BatchFactory, ComparisonFactory, ResponseFactory
from tests.rewardmodel.saved import saved_reward_model

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("training_settings")]


def test_judging_scores_each_response_once_as_the_scorer_does(researcher):
    run = saved_reward_model("judge")
    batch, elsewhere = BatchFactory(), BatchFactory()
    first = ComparisonFactory(
        batch=batch,
        prompt="How do I boil an egg?",
        response_a=ResponseFactory(text="Put it in boiling water for eight minutes."),
        response_b=ResponseFactory(text="No."),
    )
    ComparisonFactory(batch=elsewhere)

    created = judging.response_judging_create(run=run, batch=batch, created_by=researcher)
    assert judging.response_judging_create(run=run, batch=batch, created_by=researcher) == created  # one live
    done = judging.response_judging_run(judging_id=created.pk)
    assert (done.status, done.n_scored, done.error) == (JobStatus.DONE, 2, "")

    model, tokenizer = load_reward_model(run.model_dir)
    context = [{"role": "user", "content": "How do I boil an egg?"}]
    expected = score_many(model, tokenizer, [(context, first.response_a.text), (context, first.response_b.text)])
    stored = dict(ResponseReward.objects.filter(run=run).values_list("response_id", "reward"))
    assert stored == pytest.approx({first.response_a_id: expected[0], first.response_b_id: expected[1]})

    ComparisonFactory(batch=batch)
    again = judging.response_judging_create(run=run, batch=batch, created_by=researcher)
    assert again.pk != created.pk
    assert judging.response_judging_run(judging_id=again.pk).n_scored == 2  # only the new comparison's
    assert ResponseReward.objects.filter(run=run).count() == 4
    assert judging.response_judging_run(judging_id=again.pk).status == JobStatus.DONE  # a redelivery: no-op


def test_a_run_without_a_model_on_disk_fails_with_a_reason(researcher):
    run = saved_reward_model("gone")
    for path in sorted(run.model_dir.iterdir()):
        path.unlink()
    run.model_dir.rmdir()
    created = judging.response_judging_create(run=run, batch=None, created_by=researcher)
    failed = judging.response_judging_run(judging_id=created.pk)
    assert failed.status == JobStatus.FAILED and "no longer in storage" in failed.error
    assert ResponseJudging.objects.get(pk=created.pk).finished_at is not None
