"""Writes of sampling: model variants and their versions, pair policies, and the generation jobs
that turn a prompt into a comparison.

A prompt becomes a pair in three steps. (1) `prompt_submit`, `dialogue_continue` or
`batch_fill_from_pool` validate the text and write, in one transaction, the dialogue's new turns
and a queued GenerationJob holding a snapshot of the batch's pair policy; the job is sent to the
sampling queue after commit (`core.jobs.enqueue`). (2) `generation_run`, on a worker, claims its jobs and other
waiting ones, draws two variants and two temperatures per job from the job's seed, and samples
every response with one batched call per backend, sampling a side again while the two texts are
identical. (3) Each job's two Responses, its Comparison and, for an annotator-written prompt, the
writer's lease are written in one transaction, or the job is marked failed with a message, so a
crash at any point leaves a queued, running or failed job and never half a pair.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from accounts.models import User
from annotation import selectors as annotation_selectors
from annotation.models import (
    Assignment,
    AssignmentStatus,
    Batch,
    Comparison,
    Dialogue,
    Prompt,
    PromptMode,
    Response,
    Turn,
)
from config.exceptions import Conflict, InvalidInput, NotAllowed, NotFound
from core import jobs

from .backends import EndpointFailure, GenerationRequest, GenerationResult, ModelUnavailable, SamplingError
from .failures import Failure, failure, failure_from_exception
from .models import (
    GENERATION_FIELDS,
    SAMPLED_BACKENDS,
    Backend,
    ChatTemplate,
    FailureCode,
    GenerationJob,
    JobStatus,
    ModelVariant,
    PairPolicy,
    TemperatureMode,
)
from .pairs import PolicyError, SideDraw, TemperatureSpec, draw_pair, new_seed
from .templates import CONTROL_TAGS, Message, TemplateError, find_control_tags
from .variant_backends import EMBEDDED_CHECKPOINT, backend_for, backend_key, request_for

logger = logging.getLogger(__name__)

# Markup of the chat formats Preflab knows, refused in anything an annotator writes, as the Llama 2
# reference code refuses [INST] and <<SYS>>. Each model's own special tokens are checked again
# when its prompt is rendered.
FORBIDDEN_MARKUP = (
    *CONTROL_TAGS,
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|begin_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
)
MAX_NEW_TOKENS_LIMIT = 8192
MAX_RESAMPLE_ATTEMPTS = 10
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_system_random = random.SystemRandom()


# --- model variants ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantChange:
    variant: ModelVariant
    new_version: bool


def variant_validate(fields: dict[str, Any]) -> None:
    backend = fields["backend"]
    if backend not in Backend.values:
        raise InvalidInput(f"Unknown backend {backend!r}; use one of: {', '.join(Backend.values)}.", field="backend")
    if fields["chat_template"] not in ChatTemplate.values:
        raise InvalidInput(
            f"Unknown chat template {fields['chat_template']!r}; use 'model' or 'llama2'.", field="chat_template"
        )
    if backend == Backend.TRANSFORMERS and not fields["checkpoint_path"].strip():
        raise InvalidInput(
            f"Give the checkpoint directory or .gguf file the worker loads (or {EMBEDDED_CHECKPOINT} for the "
            "embedded SmolLM2-135M-Instruct).",
            field="checkpoint_path",
        )
    if backend == Backend.OPENAI:
        if not re.match(r"^https?://[^\s/]+", fields["base_url"].strip()):
            raise InvalidInput(
                "Give the endpoint's base URL, e.g. http://gpu-1:8000/v1 (vLLM, TGI, llama.cpp server, Ollama).",
                field="base_url",
            )
        if not fields["api_model"].strip():
            raise InvalidInput("Give the model name the endpoint expects (its `model` field).", field="api_model")
        if fields["chat_template"] != ChatTemplate.MODEL:
            raise InvalidInput(
                "An OpenAI-compatible endpoint applies the served model's own chat template; choose 'model'.",
                field="chat_template",
            )
    if fields["api_key_env"] and not _ENV_NAME.match(fields["api_key_env"]):
        raise InvalidInput(
            "Give the name of the environment variable that holds the key (e.g. VLLM_API_KEY), never the key.",
            field="api_key_env",
        )
    if not 0 < fields["top_p"] <= 1:
        raise InvalidInput(f"top_p is a probability mass in (0, 1], got {fields['top_p']}.", field="top_p")
    if not 1 <= fields["max_new_tokens"] <= MAX_NEW_TOKENS_LIMIT:
        raise InvalidInput(f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT}.", field="max_new_tokens")
    if found := find_control_tags(fields["system_prompt"], FORBIDDEN_MARKUP):
        raise InvalidInput(
            f"The system prompt contains {', '.join(found)}: chat-template control tags are not allowed.",
            field="system_prompt",
        )


def variant_create(
    *,
    name: str,
    backend: str,
    created_by: User | None,
    description: str = "",
    checkpoint_path: str = "",
    base_url: str = "",
    api_model: str = "",
    api_key_env: str = "",
    system_prompt: str = "",
    chat_template: str = ChatTemplate.MODEL,
    max_new_tokens: int = 256,
    top_p: float = 0.9,
) -> ModelVariant:
    """Register version 1 of a new model variant."""
    name = name.strip()
    if not name:
        raise InvalidInput("Give the variant a name, e.g. llama2-70b-chat-rlhf-v3.", field="name")
    fields = {
        "backend": backend,
        "checkpoint_path": checkpoint_path.strip(),
        "base_url": base_url.strip(),
        "api_model": api_model.strip(),
        "api_key_env": api_key_env.strip(),
        "system_prompt": system_prompt.strip(),
        "chat_template": chat_template,
        "max_new_tokens": max_new_tokens,
        "top_p": top_p,
    }
    variant_validate(fields)
    with transaction.atomic():
        newest = ModelVariant.objects.filter(name=name).order_by("-version").first()
        if newest is not None:
            raise Conflict(
                f"A variant named {name!r} exists (v{newest.version}); edit it to make a new version.", field="name"
            )
        return ModelVariant.objects.create(name=name, description=description, created_by=created_by, **fields)


def variant_update(*, variant: ModelVariant, updated_by: User | None, **changes: Any) -> VariantChange:
    """Change a variant. New generation settings make a new version; the old one is retired.

    Responses keep pointing at the version that produced them. The new version replaces the old
    one in the pair policies of open batches, so new pairs sample from it ("each new batch samples
    from the newest model variants"). Description and the active flag change in place.
    """
    allowed = {*GENERATION_FIELDS, "description", "is_active"}
    if unknown := sorted(set(changes) - allowed):
        raise InvalidInput(f"These fields cannot be changed: {', '.join(unknown)}.", field=unknown[0])
    for key in ("checkpoint_path", "base_url", "api_model", "api_key_env", "system_prompt"):
        if key in changes:
            changes[key] = (changes[key] or "").strip()
    with transaction.atomic():
        current = ModelVariant.objects.select_for_update().get(pk=variant.pk)
        newest = ModelVariant.objects.filter(name=current.name).order_by("-version").first()
        generation = {k: v for k, v in changes.items() if k in GENERATION_FIELDS and getattr(current, k) != v}
        if generation and newest.pk != current.pk:
            raise Conflict(
                f"{current} is not the newest version of {current.name!r}; edit v{newest.version} instead.",
                field="version",
            )
        fields = {k: getattr(current, k) for k in GENERATION_FIELDS} | generation
        variant_validate(fields)
        in_place = {k: v for k, v in changes.items() if k in ("description", "is_active")}
        if not generation:
            if in_place:
                ModelVariant.objects.filter(pk=current.pk).update(**in_place)
                current.refresh_from_db()
            return VariantChange(variant=current, new_version=False)
        created = ModelVariant.objects.create(
            name=current.name,
            version=current.version + 1,
            description=in_place.get("description", current.description),
            is_active=in_place.get("is_active", True),
            created_by=updated_by,
            **fields,
        )
        ModelVariant.objects.filter(pk=current.pk).update(is_active=False)
        for policy in PairPolicy.objects.filter(variants=current, batch__is_open=True):
            policy.variants.remove(current)
            policy.variants.add(created)
        return VariantChange(variant=created, new_version=True)


# --- pair policies -----------------------------------------------------------------------------


def usable_variants() -> Any:
    return ModelVariant.objects.filter(is_active=True, backend__in=SAMPLED_BACKENDS)


def pair_policy_set(
    *,
    batch: Batch,
    variant_ids: list[int],
    temperature_mode: str,
    temperatures: list[float],
    updated_by: User | None,
    max_new_tokens: int | None = None,
    max_resample_attempts: int = 3,
) -> PairPolicy:
    """Set which variants and temperatures sample the batch's pairs (creates the policy if needed)."""
    ids = sorted(set(variant_ids))
    if not ids:
        raise InvalidInput("Choose at least one model variant; two or more give pairs of different models.")
    variants = list(ModelVariant.objects.filter(pk__in=ids))
    if missing := sorted(set(ids) - {v.pk for v in variants}):
        raise NotFound(f"No model variant with id {missing[0]}.", field="variants")
    for variant in variants:
        if variant.backend not in SAMPLED_BACKENDS:
            raise InvalidInput(f"{variant} holds imported responses and cannot sample new ones.", field="variants")
        if not variant.is_active:
            raise InvalidInput(f"{variant} is retired; choose its newest version.", field="variants")
    if temperature_mode not in TemperatureMode.values:
        raise InvalidInput("The temperature mode is 'set' or 'range'.", field="temperature_mode")
    try:
        spec = TemperatureSpec.parse(temperature_mode, temperatures)
    except PolicyError as exc:
        raise InvalidInput(str(exc), field="temperatures") from None
    if max_new_tokens is not None and not 1 <= max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
        raise InvalidInput(f"max_new_tokens must be between 1 and {MAX_NEW_TOKENS_LIMIT}.", field="max_new_tokens")
    if not 0 <= max_resample_attempts <= MAX_RESAMPLE_ATTEMPTS:
        raise InvalidInput(
            f"Re-sample identical pairs at most {MAX_RESAMPLE_ATTEMPTS} times.", field="max_resample_attempts"
        )
    with transaction.atomic():
        policy, _ = PairPolicy.objects.update_or_create(
            batch=batch,
            defaults={
                "temperature_mode": spec.mode,
                "temperatures": list(spec.values),
                "max_new_tokens": max_new_tokens,
                "max_resample_attempts": max_resample_attempts,
                "updated_by": updated_by,
            },
        )
        policy.variants.set(variants)
    return policy


def policy_snapshot(policy: PairPolicy) -> dict[str, Any]:
    """The policy as stored on jobs and responses: enough to tell how a response was made."""
    variants = sorted(policy.variants.all(), key=lambda v: (v.name, v.version))
    return {
        "policy": policy.pk,
        "variants": [{"id": v.pk, "name": v.name, "version": v.version, "backend": v.backend} for v in variants],
        "temperature_mode": policy.temperature_mode,
        "temperatures": list(policy.temperatures),
        "max_new_tokens": policy.max_new_tokens,
        "max_resample_attempts": policy.max_resample_attempts,
        "updated_at": policy.updated_at.isoformat() if policy.updated_at else None,
    }


def _sampling_policy(batch: Batch) -> PairPolicy:
    policy = PairPolicy.objects.filter(batch=batch).first()
    if policy is None or not policy.variants.filter(is_active=True, backend__in=SAMPLED_BACKENDS).exists():
        raise Conflict(
            "This batch has no model to sample from yet: a researcher has to set its pair policy.", field="batch"
        )
    return policy


# --- prompts and jobs --------------------------------------------------------------------------


def prompt_text_validate(text: str, *, field: str = "prompt") -> str:
    """The prompt as stored (trimmed), or a refusal that says what to change."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput("Write a prompt first: it is empty.", field=field)
    limit = settings.PREFLAB_MAX_PROMPT_CHARS
    if len(text) > limit:
        raise InvalidInput(
            f"The prompt is {len(text):,} characters long; the limit is {limit:,}. Shorten it by "
            f"{len(text) - limit:,} characters.",
            field=field,
        )
    if found := find_control_tags(text, FORBIDDEN_MARKUP):
        raise InvalidInput(
            f"The prompt contains {', '.join(found)}, which chat templates use as control tags (the Llama 2 "
            "reference code refuses them too). Write it without them.",
            field=field,
            extra={"tags": found},
        )
    return text


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
    policy = _sampling_policy(batch)
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
        policy = _sampling_policy(batch)
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


def _interrupted_fields(job: GenerationJob) -> dict[str, str]:
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


def _mark_failed(job_id: int, outcome: Failure, now, **conditions: Any) -> bool:
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
            give_up=_interrupted_fields,
            ids_per_message=lambda: settings.PREFLAB_SAMPLING_BATCH_JOBS,
        )
    )


_warmed: set[tuple[int, ...]] = set()


def sampling_warm_up(*, batch: Batch) -> list[int]:
    """Load the local models of the batch's pair policy ahead of the first prompt, so that the
    annotator who opens the rating page does not wait for torch and the model to load. Asked once
    per web process and set of variants; returns the variants asked to load."""
    policy = PairPolicy.objects.filter(batch=batch).first()
    if policy is None:
        return []
    ids = sorted(policy.variants.filter(is_active=True, backend=Backend.TRANSFORMERS).values_list("pk", flat=True))
    key = tuple(ids)
    # Eager unit tests have no worker to warm; the first job loads the model there.
    if key and key not in _warmed and not jobs.runs_eagerly():
        _warmed.add(key)
        jobs.send_task("sampling.warm_up_variants", [list(key)], queue="sampling")
    return ids


def variants_warm_up(*, variant_ids: list[int]) -> list[str]:
    """Load these variants' local models into this process (the worker's model cache). Problems are
    logged, not raised: the first job meets them again and reports them."""
    loaded = []
    for variant in ModelVariant.objects.filter(pk__in=variant_ids, backend=Backend.TRANSFORMERS):
        try:
            backend_for(variant).load()
        except Exception:
            logger.warning("could not preload %s", variant, exc_info=True)
        else:
            loaded.append(str(variant))
    return loaded


# --- generation --------------------------------------------------------------------------------


@dataclass
class _Side:
    draw: SideDraw
    variant: ModelVariant
    request: GenerationRequest
    result: GenerationResult | None = None
    resampled: int = 0


@dataclass
class _Plan:
    job: GenerationJob
    rng: random.Random
    sides: list[_Side] = field(default_factory=list)
    failure: Failure | None = None

    @property
    def identical_or_empty(self) -> _Side | None:
        """The side to sample again, if any: an empty one, else B when both texts are the same."""
        a, b = self.sides
        for side in (a, b):
            if not side.result.text.strip():
                return side
        return b if a.result.text.strip() == b.result.text.strip() else None


@dataclass(frozen=True)
class RunSummary:
    """What a run did with the jobs it was given: `busy` ones are held by another live run."""

    done: list[int]
    failed: list[int]
    skipped: list[int]
    busy: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[int]]:
        return {"done": self.done, "failed": self.failed, "skipped": self.skipped, "busy": self.busy}


def generation_run(*, job_ids: list[int], now=None) -> RunSummary:
    """Sample the pairs of these jobs and of other waiting ones, up to PREFLAB_SAMPLING_BATCH_JOBS.

    Jobs that are done, failed or held by a live worker are skipped, so a message delivered twice
    does no harm. Each job's result is written in its own transaction (see `_write`).
    """
    now = now or timezone.now()
    claimed = _when_unlocked(lambda: _claim(job_ids, now))
    unclaimed = set(job_ids) - {job.pk for job in claimed}
    busy = sorted(GenerationJob.objects.filter(pk__in=unclaimed, status=JobStatus.RUNNING).values_list("pk", flat=True))
    skipped = sorted(unclaimed - set(busy))
    if not claimed:
        return RunSummary(done=[], failed=[], skipped=skipped, busy=busy)
    with jobs.heartbeat(GENERATION, [job.pk for job in claimed]):
        plans = [_plan(job) for job in claimed]
        _sample(plans)
    done, failed = [], []
    for plan in plans:
        written = _when_unlocked(lambda plan=plan: _write(plan))
        if written == JobStatus.DONE:
            done.append(plan.job.pk)
        elif written == JobStatus.FAILED:
            failed.append(plan.job.pk)
        else:
            skipped.append(plan.job.pk)
    return RunSummary(done=done, failed=failed, skipped=sorted(skipped), busy=busy)


def _when_unlocked(action: Callable[[], Any], attempts: int = 40) -> Any:
    """Run a database write, trying again while SQLite reports a lock.

    In the embedded default the sampling thread shares one SQLite database with the web requests.
    A file database waits for its lock (the `timeout` option), but a shared-cache one (the test
    database) answers "table is locked" at once; PostgreSQL never gets here.
    """
    for attempt in range(attempts):
        try:
            return action()
        except OperationalError as exc:
            if not _is_sqlite_lock(exc) or attempt == attempts - 1:
                raise
            time.sleep(min(0.5, 0.02 * 2**attempt))
    raise AssertionError("unreachable")


def _is_sqlite_lock(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and connection.vendor == "sqlite" and "locked" in str(exc)


def _claim(job_ids: list[int], now) -> list[GenerationJob]:
    """Mark the given jobs (queued, or running without a heartbeat) and other waiting jobs as
    running under a new attempt number. Row locks with SKIP LOCKED keep two workers apart."""
    kind = jobs.kind(GENERATION)
    limit = max(1, settings.PREFLAB_SAMPLING_BATCH_JOBS)
    with transaction.atomic():
        own = list(
            GenerationJob.objects.filter(jobs.claimable(kind, now), pk__in=job_ids)
            .select_for_update(skip_locked=True)
            .order_by("id")
        )
        others = []
        if len(own) < limit:
            others = list(
                GenerationJob.objects.filter(status=JobStatus.QUEUED)
                .exclude(pk__in=job_ids)
                .select_for_update(skip_locked=True)
                .order_by("id")[: limit - len(own)]
            )
        claimed = []
        for job in own + others:
            if job.status == JobStatus.RUNNING and job.attempts >= settings.PREFLAB_SAMPLING_MAX_ATTEMPTS:
                GenerationJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts).update(
                    status=JobStatus.FAILED, finished_at=now, **_interrupted_fields(job)
                )
                continue
            if GenerationJob.objects.filter(pk=job.pk, status=job.status, attempts=job.attempts).update(
                **jobs.claim_fields(kind, now), started_at=now
            ):
                job.status, job.attempts = JobStatus.RUNNING, job.attempts + 1
                job.started_at = job.heartbeat_at = now
                claimed.append(job)
    return claimed


def _messages(job: GenerationJob) -> list[Message]:
    turns = Turn.objects.filter(dialogue_id=job.dialogue_id, index__lt=job.context_length).order_by("index")
    return [{"role": turn.role, "content": turn.content} for turn in turns]


def _plan(job: GenerationJob) -> _Plan:
    """Draw the pair's two variants, temperatures and seeds from the job's seed and snapshot."""
    plan = _Plan(job=job, rng=random.Random(job.seed))
    snapshot = job.policy or {}
    variants = ModelVariant.objects.in_bulk([v["id"] for v in snapshot.get("variants", [])])
    usable = [pk for pk, v in variants.items() if v.backend in SAMPLED_BACKENDS]
    try:
        spec = TemperatureSpec.parse(snapshot.get("temperature_mode", ""), snapshot.get("temperatures", []))
        draws = draw_pair(usable, spec, plan.rng)
    except PolicyError as exc:
        plan.failure = failure(FailureCode.NO_VARIANTS, f"The pair policy cannot sample: {exc}")
        return plan
    messages = _messages(job)
    for draw in draws:
        variant = variants[draw.variant_id]
        try:
            request = request_for(
                variant,
                messages,
                temperature=draw.temperature,
                seed=draw.seed,
                max_new_tokens=snapshot.get("max_new_tokens"),
            )
        except ValueError as exc:
            plan.failure = failure(FailureCode.INTERNAL, f"{variant}: cannot build the request: {exc}")
            return plan
        plan.sides.append(_Side(draw=draw, variant=variant, request=request))
    return plan


def _sample(plans: list[_Plan]) -> None:
    """Generate every side, then sample again the sides of pairs that came out identical (or empty)."""
    pending = [(plan, side) for plan in plans if plan.failure is None for side in plan.sides]
    while pending:
        _generate(pending)
        pending = []
        for plan in plans:
            if plan.failure is not None:
                continue
            side = plan.identical_or_empty
            if side is None:
                continue
            limit = plan.job.policy.get("max_resample_attempts", 3)
            if side.resampled >= limit:
                plan.failure = failure(
                    FailureCode.IDENTICAL,
                    f"The two responses were identical or empty after {limit} re-samples "
                    f"({plan.sides[0].variant} and {plan.sides[1].variant}).",
                )
                continue
            side.resampled += 1
            seed = new_seed(plan.rng)
            side.draw = replace(side.draw, seed=seed)
            side.request = replace(side.request, seed=seed)
            pending.append((plan, side))


def _generate(pending: list[tuple[_Plan, _Side]]) -> None:
    """One batched call per backend, the backends side by side (two endpoints answer at the same
    time); a failure fails the pairs that needed that backend."""
    groups: dict[tuple[str, ...], list[tuple[_Plan, _Side]]] = defaultdict(list)
    for plan, side in pending:
        if plan.failure is None:
            groups[backend_key(side.variant)].append((plan, side))
    if len(groups) == 1:
        _generate_or_isolate(next(iter(groups.values())))
        return
    with ThreadPoolExecutor(max_workers=min(4, len(groups)), thread_name_prefix="preflab-backend") as pool:
        list(pool.map(_generate_or_isolate, groups.values()))


def _generate_or_isolate(group: list[tuple[_Plan, _Side]]) -> None:
    try:
        _generate_group(group)
    except (ModelUnavailable, EndpointFailure) as exc:
        _fail_group(group, exc)  # the backend itself is at fault: every pair that needs it fails
    except Exception as exc:
        plans = list({id(plan): plan for plan, _ in group}.values())
        if len(plans) == 1:
            _fail_group(group, exc)
            return
        # One dialogue may be at fault (markup, length): sample each pair alone to find it.
        for plan in plans:
            own = [(p, s) for p, s in group if p is plan]
            try:
                _generate_group(own)
            except Exception as single_exc:
                _fail_group(own, single_exc)


def _generate_group(group: list[tuple[_Plan, _Side]]) -> None:
    backend = backend_for(group[0][1].variant)
    started = time.perf_counter()
    results = backend.generate_batch([side.request for _, side in group])
    logger.info(
        "sampled %d responses for jobs %s in %.2f s",
        len(results),
        sorted({plan.job.pk for plan, _ in group}),
        time.perf_counter() - started,
    )
    for (_, side), result in zip(group, results, strict=True):
        side.result = result


def _fail_group(group: list[tuple[_Plan, _Side]], exc: BaseException) -> None:
    if not isinstance(exc, SamplingError | TemplateError):
        logger.error("sampling failed for jobs %s", sorted({p.job.pk for p, _ in group}), exc_info=exc)
    for plan, side in group:
        if plan.failure is None:
            plan.failure = failure_from_exception(exc, variant=str(side.variant))


def _generation_record(plan: _Plan, side: _Side, label: str) -> dict[str, Any]:
    result = side.result
    request = side.request
    return {
        "source": "sampling",
        "job": plan.job.pk,
        "side": label,
        "variant": {
            "id": side.variant.pk,
            "name": side.variant.name,
            "version": side.variant.version,
            "backend": side.variant.backend,
        },
        "settings": {
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_new_tokens": request.max_new_tokens,
            "seed": request.seed,
            "system_prompt": request.system or "",
            "chat_template": side.variant.chat_template,
        },
        "resampled": side.resampled,
        "policy": plan.job.policy,
        "job_seed": plan.job.seed,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "finish_reason": result.finish_reason,
        "seconds": round(result.seconds, 3),
        "backend": result.metadata,
    }


def _write(plan: _Plan) -> str | None:
    """Write the pair (responses, comparison, the writer's lease) or the failure, in one transaction.

    Only while the job is still running under this run's attempt: a run that lost its claim (its
    heartbeat stopped and another worker took over) writes nothing. Returns the status written.
    """
    from annotation.services import assignment_for_writer

    job = plan.job
    now = timezone.now()
    try:
        with transaction.atomic():
            claimed = (
                GenerationJob.objects.select_for_update(of=("self",))
                .filter(pk=job.pk, status=JobStatus.RUNNING, attempts=job.attempts)
                .select_related("batch", "requested_by")
                .first()
            )
            if claimed is None:
                return None
            if plan.failure is not None:
                _mark_failed(job.pk, plan.failure, now)
                return JobStatus.FAILED
            a, b = (
                Response.objects.create(
                    text=side.result.text,
                    variant=side.variant,
                    temperature=side.request.temperature,
                    top_p=side.request.top_p,
                    max_new_tokens=side.request.max_new_tokens,
                    generation=_generation_record(plan, side, label),
                )
                for side, label in zip(plan.sides, ("a", "b"), strict=True)
            )
            comparison = Comparison.objects.create(
                batch=claimed.batch,
                dialogue_id=job.dialogue_id,
                context_length=job.context_length,
                response_a=a,
                response_b=b,
            )
            if job.prompt_id is not None:
                Prompt.objects.filter(pk=job.prompt_id).update(used_at=now)
            writer = claimed.requested_by
            if job.prompt_id is None and writer is not None and writer.is_annotator:
                assignment_for_writer(annotator=writer, comparison=comparison, now=now, rng=plan.rng)
            GenerationJob.objects.filter(pk=job.pk).update(
                status=JobStatus.DONE, comparison=comparison, finished_at=now, heartbeat_at=now
            )
            return JobStatus.DONE
    except Exception as exc:
        if _is_sqlite_lock(exc):
            raise  # nothing was written: the caller tries again
        logger.exception("could not write the pair of generation job %s", job.pk)
        outcome = failure(FailureCode.INTERNAL, f"Writing the pair failed, nothing was kept: {exc!r}")
        _mark_failed(job.pk, outcome, timezone.now(), status=JobStatus.RUNNING, attempts=job.attempts)
        return JobStatus.FAILED
