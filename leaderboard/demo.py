"""The RLHF loop in the demo workspace (`manage.py preflab_demo`, after annotation.demo.load_demo):

1. a small helpfulness reward model trained now on the labelled comparisons of "Week 1 ·
   helpfulness" (all-MiniLM-L6-v2, a few optimizer steps: seconds on a CPU; its labels are the
   demo's simulated ratings, so it is a demonstration, not a good judge);
2. a best-of-3 variant wrapping smollm2-concise with that reward model;
3. "Week 2 · pairs chosen by the reward model": a prompt pool whose pair policy samples 4
   candidates across both SmolLM2 variants and three temperatures and keeps the most uncertain pair;
4. "Week 2 · best-of-3 against its base": a pool whose pairs compare the best-of-3 variant with
   smollm2-concise, so rating them shows the gain of rejection sampling on the leaderboard;
5. a judging of every batch's responses by the reward model, for the leaderboard's second ranking.

Both pools are sampled by the worker `make demo` starts (the sampling queue), and the judging runs
on the default queue: nothing here waits for them. Idempotent: what exists is kept.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from accounts.models import User
from annotation import services as annotation_services
from annotation.models import Batch, Focus, PromptMode
from preference_data import services as dataset_services
from preference_data.models import DatasetBuild, JobStatus
from rewardmodel.models import BaseCheckpoint, ResponseJudging, RunStatus, TrainingRun
from rewardmodel.services import judging, runs
from sampling import services as sampling_services
from sampling.models import ModelVariant, PairPolicy, PairSelection

PROMPTS = Path(__file__).resolve().parents[1] / "annotation" / "fixtures" / "demo_prompts_helpfulness.jsonl"
DATASET_NAME = "Demo · Week 1 helpfulness (for the demo reward model)"
RUN_NAME = "Demo helpfulness RM (MiniLM, simulated labels)"
BEST_OF_K_NAME = "smollm2-concise-best-of-3"
UNCERTAIN_BATCH = "Week 2 · pairs chosen by the reward model"
BEST_OF_K_BATCH = "Week 2 · best-of-3 against its base"
# A few optimizer steps over the demo's ~15 training pairs: enough to save a real model in seconds.
RUN_HYPERPARAMETERS = {
    "learning_rate": 1e-4,
    "batch_pairs": 4,
    "micro_batch_pairs": 4,
    "max_length": 128,
    "checkpoint_every": 0,
    "eval_batch_size": 16,
}
# Each pool gets this many prompts, sampled in the background (short responses keep a CPU quick).
POOL_PROMPTS = 4
MAX_NEW_TOKENS = 64


def ensure_reward_model(researcher: User, batch: Batch) -> TrainingRun:
    existing = TrainingRun.objects.filter(name=RUN_NAME, status=RunStatus.SUCCEEDED).first()
    if existing is not None:
        return existing
    dataset = DatasetBuild.objects.filter(name=DATASET_NAME, status=JobStatus.DONE).first()
    if dataset is None:
        created = dataset_services.dataset_build_create(
            created_by=researcher,
            name=DATASET_NAME,
            batch_ids=[batch.pk],
            held_out_mode="fraction",
            test_fraction=0.25,
            enqueue=False,
        )
        dataset = dataset_services.dataset_build_run(build_id=created.pk)
    run = runs.run_create(
        created_by=researcher,
        dataset=dataset,
        base_checkpoint=BaseCheckpoint.objects.get(name="MiniLM-L6-v2 encoder"),
        kind=Focus.HELPFULNESS,
        name=RUN_NAME,
        hyperparameters=RUN_HYPERPARAMETERS,
    )
    # Trained here, not on the worker: the policies below need a saved model to be set. A message
    # for it still reaches the worker later, which finds it finished and leaves it.
    return runs.run_execute(run_id=run.pk, task_id="demo").run


def ensure_pool_batch(name: str, researcher: User, prompts: list[dict], guidelines: str) -> tuple[Batch, bool]:
    batch = Batch.objects.filter(name=name).first()
    if batch is not None:
        return batch, False
    batch = annotation_services.batch_create(
        name=name,
        focus=Focus.HELPFULNESS,
        guidelines=guidelines,
        prompt_mode=PromptMode.POOL,
        created_by=researcher,
    )
    source = io.BytesIO("".join(json.dumps(p) + "\n" for p in prompts).encode())
    annotation_services.prompts_import(batch=batch, source=source, created_by=researcher)
    return batch, True


def load_loop_demo(*, researcher: User, helpful_batch: Batch, guidelines: str) -> dict:
    run = ensure_reward_model(researcher, helpful_batch)
    concise = ModelVariant.objects.filter(name="smollm2-concise", is_active=True).order_by("-version").first()
    friendly = ModelVariant.objects.filter(name="smollm2-friendly", is_active=True).order_by("-version").first()
    best = ModelVariant.objects.filter(name=BEST_OF_K_NAME, is_active=True).first()
    if best is None:
        best = sampling_services.variant_create(
            name=BEST_OF_K_NAME,
            backend="best_of_k",
            description="Rejection sampling: 3 samples of smollm2-concise, the demo reward model keeps the best.",
            base_variant=concise,
            reward_run=run,
            best_of_k=3,
            created_by=researcher,
        )
    prompts = [json.loads(line) for line in PROMPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    uncertain, new_uncertain = ensure_pool_batch(UNCERTAIN_BATCH, researcher, prompts[:POOL_PROMPTS], guidelines)
    contest, new_contest = ensure_pool_batch(
        BEST_OF_K_BATCH, researcher, prompts[POOL_PROMPTS : 2 * POOL_PROMPTS], guidelines
    )
    common = {"temperature_mode": "set", "max_new_tokens": MAX_NEW_TOKENS, "updated_by": researcher}
    if not PairPolicy.objects.filter(batch=uncertain).exists():
        sampling_services.pair_policy_set(
            batch=uncertain,
            variant_ids=[concise.pk, friendly.pk],
            temperatures=[0.6, 0.8, 1.0],
            selection=PairSelection.UNCERTAIN,
            candidates=4,
            reward_run=run,
            **common,
        )
    if not PairPolicy.objects.filter(batch=contest).exists():
        sampling_services.pair_policy_set(
            batch=contest, variant_ids=[best.pk, concise.pk], temperatures=[0.7, 0.9], **common
        )
    queued = 0
    for batch, new in ((uncertain, new_uncertain), (contest, new_contest)):
        if new:
            filled = sampling_services.batch_fill_from_pool(batch=batch, count=POOL_PROMPTS, requested_by=researcher)
            queued += len(filled)
    if not ResponseJudging.objects.filter(run=run, batch__isnull=True).exists():
        judging.response_judging_create(run=run, batch=None, created_by=researcher)
    return {"run": run, "best_of_k": best, "batches": [uncertain, contest], "queued": queued}
