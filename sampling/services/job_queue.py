"""Writes that queue generation jobs: an annotator's prompt, the continuation of their dialogue, a
fill from the batch's prompt pool, and the retry of a failed job. Each writes the dialogue's new
turns and a queued GenerationJob in one transaction and sends it after commit through the
background-work spine (``core.jobs``), where ``register_background_work`` declares the GENERATION
kind. Also the two writes that end a job without a pair (``interrupted_fields``, ``job_mark_failed``),
shared with the generation engine.
"""

from __future__ import annotations

import random
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import User
from annotation import selectors as annotation_selectors
from annotation.models import Assignment, AssignmentStatus, Batch, Dialogue, Prompt, PromptMode, Turn
from config.exceptions import Conflict, InvalidInput, NotAllowed, NotFound
from core import jobs  # the background-work spine; this module is sampling.services.job_queue

from ..draws import new_seed
from ..failures import Failure, failure
from ..models import FailureCode, GenerationJob, JobStatus, PairPolicy
from .policies import policy_snapshot, sampling_policy_for
from .validation import prompt_text_validate

_system_random = random.SystemRandom()


def _job_create(
    *,
    batch: Batch,
    dialogue: Dialogue,
    context_length: int,
    policy: PairPolicy,
    requested_by: User | None,
    prompt: Prompt | None = None,
) -> GenerationJob:
    return GenerationJob.objects.create(
        batch=batch,
        dialogue=dialogue,
        context_length=context_length,
        prompt=prompt,
        requested_by=requested_by,
        policy=policy_snapshot(policy),
        seed=new_seed(_system_random),
    )


def _writer_checks(annotator: User, batch: Batch) -> PairPolicy:
    refusal = annotation_selectors.batch_refusal_for(annotator, batch)
    if refusal:
        raise NotAllowed(refusal)
    if batch.prompt_mode != PromptMode.ANNOTATOR:
        raise Conflict("In this batch the pairs are prepared in advance: there is no prompt to write.", field="batch")
    policy = sampling_policy_for(batch)
    active = (
        GenerationJob.objects.filter(
            requested_by=annotator, batch=batch, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
        )
        .values_list("pk", flat=True)
        .first()
    )
    if active is not None:
        raise Conflict(
            "Your last prompt is still being sampled; wait for its pair.", field="job", extra={"job": active}
        )
    return policy


def prompt_submit(*, annotator: User, batch: Batch, text: str) -> GenerationJob:
    """Start a dialogue with the annotator's prompt and queue its pair."""
    text = prompt_text_validate(text)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=annotator.pk).first()  # one submit at a time per person
        policy = _writer_checks(annotator, batch)
        dialogue = Dialogue.objects.create(batch=batch, created_by=annotator)
        Turn.objects.create(dialogue=dialogue, index=0, role=Turn.Role.USER, content=text)
        job = _job_create(batch=batch, dialogue=dialogue, context_length=1, policy=policy, requested_by=annotator)
        jobs.enqueue(GENERATION, [job.pk])
    return job


def dialogue_continue(*, annotator: User, assignment_id: int, text: str) -> GenerationJob:
    """Continue the annotator's own dialogue after rating its last pair: their chosen response joins
    the dialogue as the assistant's turn, their new message follows, and a pair is queued for it."""
    text = prompt_text_validate(text)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=annotator.pk).first()
        assignment = (
            Assignment.objects.select_related("comparison__batch", "comparison__dialogue")
            .filter(pk=assignment_id)
            .first()
        )
        if assignment is None:
            raise NotFound("This pair does not exist.", field="assignment")
        comparison = assignment.comparison
        if assignment.annotator_id != annotator.pk or comparison.dialogue.created_by_id != annotator.pk:
            raise NotAllowed("Only the annotator who wrote this dialogue can continue it.", field="assignment")
        if comparison.repeat_of_id is not None or comparison.is_gold:
            raise Conflict("This pair cannot be continued.", field="assignment")
        rating = getattr(assignment, "rating", None) if assignment.status == AssignmentStatus.SUBMITTED else None
        if rating is None:
            raise Conflict("Rate this pair first: the response you choose joins the dialogue.", field="assignment")
        batch = comparison.batch
        policy = _writer_checks(annotator, batch)
        Dialogue.objects.select_for_update().filter(pk=comparison.dialogue_id).first()
        turns = Turn.objects.filter(dialogue_id=comparison.dialogue_id).count()
        if turns != comparison.context_length:
            raise Conflict("This dialogue was already continued after this pair.", field="assignment")
        if turns + 2 > settings.PREFLAB_MAX_DIALOGUE_TURNS:
            raise InvalidInput(
                f"This dialogue has {turns} turns, the most a dialogue may have here is "
                f"{settings.PREFLAB_MAX_DIALOGUE_TURNS}. Start a new prompt.",
                field="prompt",
            )
        chosen = comparison.response_for(rating.chosen)
        Turn.objects.bulk_create(
            [
                Turn(dialogue_id=comparison.dialogue_id, index=turns, role=Turn.Role.ASSISTANT, content=chosen.text),
                Turn(dialogue_id=comparison.dialogue_id, index=turns + 1, role=Turn.Role.USER, content=text),
            ]
        )
        job = _job_create(
            batch=batch,
            dialogue=comparison.dialogue,
            context_length=turns + 2,
            policy=policy,
            requested_by=annotator,
        )
        jobs.enqueue(GENERATION, [job.pk])
    return job


def batch_fill_from_pool(*, batch: Batch, count: int, requested_by: User | None) -> list[GenerationJob]:
    """Queue pairs for up to `count` prompts of the batch's pool that have no pair yet."""
    if not 1 <= count <= settings.PREFLAB_FILL_MAX:
        raise InvalidInput(f"Fill between 1 and {settings.PREFLAB_FILL_MAX} pairs at a time.", field="count")
    with transaction.atomic():
        policy = sampling_policy_for(batch)
        taken = GenerationJob.objects.filter(
            prompt__isnull=False, status__in=[JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE]
        ).values("prompt_id")
        prompts = list(
            Prompt.objects.filter(batch=batch, used_at__isnull=True)
            .exclude(pk__in=taken)
            .order_by("id")
            .select_for_update(skip_locked=True)[:count]
        )
        if not prompts:
            raise Conflict("Every prompt of this batch's pool has a pair or is being sampled.", field="count")
        created = []
        for prompt in prompts:
            text = prompt_text_validate(prompt.text, field="prompts")
            dialogue = Dialogue.objects.create(batch=batch, created_by=requested_by)
            Turn.objects.create(dialogue=dialogue, index=0, role=Turn.Role.USER, content=text)
            created.append(
                _job_create(
                    batch=batch,
                    dialogue=dialogue,
                    context_length=1,
                    policy=policy,
                    requested_by=requested_by,
                    prompt=prompt,
                )
            )
        jobs.enqueue(GENERATION, [job.pk for job in created])
    return created


def job_retry(*, user: User, job_id: int) -> GenerationJob:
    """Queue a failed job again, with the same dialogue and seed."""
    with transaction.atomic():
        job = GenerationJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or not (user.is_researcher or job.requested_by_id == user.pk):
            raise NotFound("This sampling job does not exist.", field="job")
        if job.status != JobStatus.FAILED:
            raise Conflict(f"Only a failed job can be tried again; this one is {job.get_status_display().lower()}.")
        GenerationJob.objects.filter(pk=job.pk).update(
            status=JobStatus.QUEUED,
            error_code="",
            error_detail="",
            error_message="",
            started_at=None,
            heartbeat_at=None,
            finished_at=None,
        )
        jobs.enqueue(GENERATION, [job.pk])
    job.refresh_from_db()
    return job


def interrupted_fields(job: GenerationJob) -> dict[str, str]:
    """What a job that lost its worker after its last attempt says (core.jobs gives up on it)."""
    outcome = failure(
        FailureCode.INTERRUPTED,
        f"No heartbeat from the worker since {job.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC after attempt "
        f"{job.attempts} of {settings.PREFLAB_SAMPLING_MAX_ATTEMPTS}: it was killed, restarted or ran out "
        "of memory. Nothing of this pair was written."
        if job.heartbeat_at
        else f"The worker stopped before its first heartbeat, after attempt {job.attempts}.",
    )
    return {"error_code": outcome.code, "error_detail": outcome.detail, "error_message": outcome.message}


def job_mark_failed(job_id: int, outcome: Failure, now, **conditions: Any) -> bool:
    return bool(
        GenerationJob.objects.filter(pk=job_id, **conditions).update(
            status=JobStatus.FAILED,
            error_code=outcome.code,
            error_detail=outcome.detail,
            error_message=outcome.message,
            finished_at=now,
        )
    )


GENERATION = "sampling.generation"


def register_background_work() -> None:
    """Generation jobs are core.jobs work: sent to the sampling queue in chunks of
    PREFLAB_SAMPLING_BATCH_JOBS, given back to the queue when their worker dies, failed after
    PREFLAB_SAMPLING_MAX_ATTEMPTS runs."""
    jobs.register(
        jobs.JobKind(
            name=GENERATION,
            rows=GenerationJob.objects.all,
            task="sampling.generate_pairs",
            queue="sampling",
            stale_seconds=lambda: settings.PREFLAB_SAMPLING_STALE_SECONDS,
            max_attempts=lambda: settings.PREFLAB_SAMPLING_MAX_ATTEMPTS,
            give_up=interrupted_fields,
            ids_per_message=lambda: settings.PREFLAB_SAMPLING_BATCH_JOBS,
        )
    )
