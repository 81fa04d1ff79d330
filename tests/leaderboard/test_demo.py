"""The demo workspace closes the loop (issue 16): `manage.py preflab_demo` trains a small reward
model, registers a best-of-3 variant on it, opens a batch whose pairs the reward model chooses (most
uncertain of 4) and one comparing best-of-3 with its base, queues both pools for the worker and a
judging, and the leaderboard ranks the demo's variants. Running it again adds nothing."""

import io

import pytest
from django.core.management import call_command

from accounts.models import User
from leaderboard import demo, selectors
from rewardmodel.models import ResponseJudging, RunStatus, TrainingRun
from sampling.models import GenerationJob, JobStatus, ModelVariant, PairPolicy

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media")]


def test_the_demo_shows_the_loop(settings, embedded_checkpoint):
    settings.PREFLAB_MODEL_CACHE = str(embedded_checkpoint.parent)
    settings.PREFLAB_TORCH_THREADS = 1
    out = io.StringIO()
    call_command("preflab_demo", stdout=out)
    assert "The RLHF loop" in out.getvalue() and "8 pairs queued for the worker" in out.getvalue()

    run = TrainingRun.objects.get(name=demo.RUN_NAME)
    assert run.status == RunStatus.SUCCEEDED and run.model_dir.is_dir()
    best = ModelVariant.objects.get(name=demo.BEST_OF_K_NAME)
    assert (best.backend, best.base_variant.name, best.reward_run, best.best_of_k) == (
        "best_of_k",
        "smollm2-concise",
        run,
        3,
    )
    uncertain = PairPolicy.objects.get(batch__name=demo.UNCERTAIN_BATCH)
    assert (uncertain.selection, uncertain.candidates, uncertain.reward_run) == ("uncertain", 4, run)
    contest = PairPolicy.objects.get(batch__name=demo.BEST_OF_K_BATCH)
    assert {v.name for v in contest.variants.all()} == {demo.BEST_OF_K_NAME, "smollm2-concise"}
    for policy in (uncertain, contest):
        assert GenerationJob.objects.filter(batch=policy.batch, status=JobStatus.QUEUED).count() == 4
    assert ResponseJudging.objects.filter(run=run, batch__isnull=True).count() == 1

    board = selectors.leaderboard_for(
        User.objects.get(username="researcher"), scope=selectors.Scope(), grouping=selectors.BY_VARIANT
    )
    rated = {e.item.variant for e in board.humans.entries if e.comparisons}
    assert {"helper-7b-v3 v1", "helper-7b-v4 v1", "helper-13b-v1 v1"} <= rated

    call_command("preflab_demo", stdout=io.StringIO())  # idempotent
    assert TrainingRun.objects.filter(name=demo.RUN_NAME).count() == 1
    assert GenerationJob.objects.count() == 8 and ModelVariant.objects.filter(name=demo.BEST_OF_K_NAME).count() == 1
