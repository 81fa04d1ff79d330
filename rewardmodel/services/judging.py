"""A reward model as judge: score the stored responses of a batch's comparisons (or every batch's)
with a trained run, so the variant leaderboard can rank variants by that model beside the humans
(Llama 2, Figure 11: progress judged by the reward model as well as by people).

Scoring loads a model, so it is background work (core.jobs, queue "default", like evaluations): the
request stores a `ResponseJudging` (`response_judging_create`), a worker claims it and writes one
`ResponseReward` per response it has not scored yet (`response_judging_run`).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from annotation.models import Batch, Comparison, Turn
from config.exceptions import Conflict, DomainError, NotFound
from core import jobs
from preference_data.models import JobStatus

from ..models import ResponseJudging, ResponseReward, RunStatus, TrainingRun

logger = logging.getLogger(__name__)

JUDGING = "rewardmodel.judging"
# Responses scored and written per step: a heartbeat and a commit between steps.
CHUNK = 64


def register_background_work() -> None:
    jobs.register(
        jobs.JobKind(
            name=JUDGING,
            rows=ResponseJudging.objects.all,
            task="rewardmodel.judge_responses",
            queue="default",
            stale_seconds=lambda: settings.PREFLAB_JOBS_STALE_SECONDS,
            max_attempts=lambda: settings.PREFLAB_JOBS_MAX_ATTEMPTS,
            queued=JobStatus.QUEUED,
            running=(JobStatus.RUNNING,),
        )
    )


def response_judging_create(*, run: TrainingRun, batch: Batch | None, created_by: User | None) -> ResponseJudging:
    """Queue the scoring of the scope's responses with the run's model (one live judging per scope)."""
    if run.status not in (RunStatus.SUCCEEDED, RunStatus.CANCELLED) or not run.output_path:
        raise Conflict(f"Run {run.pk} ({run.name}) has no saved model yet.", field="run")
    with transaction.atomic():
        live = (
            ResponseJudging.objects.select_for_update()
            .filter(run=run, batch=batch, status__in=(JobStatus.QUEUED, JobStatus.RUNNING))
            .first()
        )
        if live is not None:
            return live
        judging = ResponseJudging.objects.create(run=run, batch=batch, created_by=created_by)
        jobs.enqueue(JUDGING, [judging.pk])
    return judging


def unscored_items(judging: ResponseJudging) -> list[tuple[int, list[dict], str]]:
    """(response id, context messages, text) for each response of the scope the run has not scored."""
    comparisons = Comparison.objects.filter(repeat_of__isnull=True)
    if judging.batch_id is not None:
        comparisons = comparisons.filter(batch_id=judging.batch_id)
    rows = comparisons.values_list(
        "dialogue_id", "context_length", "response_a_id", "response_a__text", "response_b_id", "response_b__text"
    )
    scored = set(ResponseReward.objects.filter(run=judging.run).values_list("response_id", flat=True))
    wanted: dict[int, tuple[int, int, str]] = {}
    for dialogue_id, context_length, a_id, a_text, b_id, b_text in rows:
        for response_id, text in ((a_id, a_text), (b_id, b_text)):
            if response_id not in scored:
                wanted.setdefault(response_id, (dialogue_id, context_length, text))
    turns: dict[int, list[tuple[int, dict]]] = defaultdict(list)
    dialogues = {dialogue_id for dialogue_id, _, _ in wanted.values()}
    for dialogue_id, index, role, content in (
        Turn.objects.filter(dialogue_id__in=dialogues)
        .order_by("index")
        .values_list("dialogue_id", "index", "role", "content")
    ):
        turns[dialogue_id].append((index, {"role": role, "content": content}))
    return [
        (response_id, [m for index, m in turns[dialogue_id] if index < context_length], text)
        for response_id, (dialogue_id, context_length, text) in sorted(wanted.items())
    ]


def response_judging_run(*, judging_id: int) -> ResponseJudging:
    """Score what the run has not scored yet and store the rewards (the task's body)."""
    from sampling.variant_backends import configure_torch_threads

    from ..scoring import load_reward_model, score_many

    attempt = jobs.claim(JUDGING, judging_id, started_at=timezone.now(), error="")
    judging = ResponseJudging.objects.select_related("run").filter(pk=judging_id).first()
    if judging is None:
        raise NotFound(f"No judging {judging_id}.")
    if attempt is None:
        return judging
    mine = ResponseJudging.objects.filter(pk=judging_id, attempts=attempt, status=JobStatus.RUNNING)
    try:
        with jobs.heartbeat(JUDGING, [judging_id]):
            run = judging.run
            if run.model_dir is None or not run.model_dir.is_dir():
                raise Conflict(f"The model of run {run.pk} is no longer in storage.")
            configure_torch_threads()
            model, tokenizer = load_reward_model(run.model_dir)
            items = unscored_items(judging)
            for start in range(0, len(items), CHUNK):
                chunk = items[start : start + CHUNK]
                rewards = score_many(model, tokenizer, [(context, text) for _, context, text in chunk])
                ResponseReward.objects.bulk_create(
                    [
                        ResponseReward(run=run, response_id=response_id, reward=reward)
                        for (response_id, _, _), reward in zip(chunk, rewards, strict=True)
                    ],
                    ignore_conflicts=True,
                )
                mine.update(n_scored=start + len(chunk))
        mine.update(status=JobStatus.DONE, n_scored=len(items), finished_at=timezone.now())
    except Exception as exc:
        if not isinstance(exc, DomainError):
            logger.exception("judging %s failed", judging_id)
        detail = exc.detail if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        mine.update(status=JobStatus.FAILED, error=detail, finished_at=timezone.now())
    judging.refresh_from_db()
    return judging
