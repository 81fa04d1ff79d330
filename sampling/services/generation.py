"""The generation engine, run by a worker: `generation_run` claims its jobs and other waiting ones,
plans each pair (two variants, two temperatures and seeds drawn from the job's seed), samples every
response with one batched call per backend (sampling a side again while the two texts are
identical or empty), and writes each job's pair, or its failure, in one transaction. Also the
warm-up that loads a batch's local models into the worker before its first prompt.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from annotation.models import Batch, Comparison, Prompt, Response, Turn
from core import jobs

from .. import pair_rules
from ..backends import EndpointFailure, GenerationRequest, GenerationResult, ModelUnavailable, SamplingError
from ..draws import PolicyError, SideDraw, TemperatureSpec, draw_candidates, draw_pair, new_seed
from ..failures import Failure, failure, failure_from_exception
from ..models import (
    SAMPLED_BACKENDS,
    Backend,
    FailureCode,
    GenerationJob,
    JobStatus,
    ModelVariant,
    PairPolicy,
    PairSelection,
)
from ..templates import Message, TemplateError
from ..variant_backends import backend_for, backend_key, request_for
from .job_queue import GENERATION, interrupted_fields, job_mark_failed

logger = logging.getLogger(__name__)


@dataclass
class PlannedSide:
    draw: SideDraw
    variant: ModelVariant
    request: GenerationRequest
    result: GenerationResult | None = None
    resampled: int = 0


@dataclass
class PairPlan:
    job: GenerationJob
    rng: random.Random
    sides: list[PlannedSide] = field(default_factory=list)
    failure: Failure | None = None
    # A reward-model-chosen pair: the K candidates sampled, and the record of the choice.
    candidates: list[PlannedSide] = field(default_factory=list)
    selection: dict[str, Any] | None = None

    @property
    def identical_or_empty(self) -> PlannedSide | None:
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
        plans = [pair_plan(job) for job in claimed]
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
                    status=JobStatus.FAILED, finished_at=now, **interrupted_fields(job)
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


def pair_plan(job: GenerationJob) -> PairPlan:
    """Draw the pair's two variants, temperatures and seeds from the job's seed and snapshot."""
    plan = PairPlan(job=job, rng=random.Random(job.seed))
    snapshot = job.policy or {}
    # A best-of-K variant's base and reward models come along: backends run in threads of their own.
    variants = ModelVariant.objects.select_related("base_variant", "reward_run", "safety_run").in_bulk(
        [v["id"] for v in snapshot.get("variants", [])]
    )
    usable = [pk for pk, v in variants.items() if v.backend in SAMPLED_BACKENDS]
    chosen_by_model = snapshot.get("selection", PairSelection.RANDOM) != PairSelection.RANDOM
    try:
        spec = TemperatureSpec.parse(snapshot.get("temperature_mode", ""), snapshot.get("temperatures", []))
        if chosen_by_model:
            draws = draw_candidates(usable, spec, int(snapshot.get("candidates", 4)), plan.rng)
        else:
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
        (plan.candidates if chosen_by_model else plan.sides).append(
            PlannedSide(draw=draw, variant=variant, request=request)
        )
    return plan


def _sample(plans: list[PairPlan]) -> None:
    """Generate every side, then sample again the sides of pairs that came out identical (or empty)."""
    pending = [(plan, side) for plan in plans if plan.failure is None for side in plan.candidates or plan.sides]
    first_round = True
    while pending:
        _generate(pending)
        if first_round:
            _choose_pairs([plan for plan in plans if plan.candidates and plan.failure is None])
            first_round = False
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


def _choose_pairs(plans: list[PairPlan]) -> None:
    """Score each plan's K candidates with the policy's reward model(s) and keep the pair its rule
    picks (sampling.pair_rules); the scores and the choice are kept for the responses' records."""
    from rewardmodel.models import TrainingRun
    from rewardmodel.services.rewards import candidate_rewards

    for plan in plans:
        snapshot = plan.job.policy
        rule = snapshot["selection"]
        run_ids = [snapshot.get("reward_run"), snapshot.get("safety_run")]
        runs = TrainingRun.objects.in_bulk([pk for pk in run_ids if pk])
        run, safety_run = (runs.get(pk) if pk else None for pk in run_ids)
        if run is None or (snapshot.get("safety_run") and safety_run is None):
            plan.failure = failure(
                FailureCode.MODEL_MISSING, "The reward model that chooses this policy's pairs was deleted."
            )
            continue
        items = [(list(side.request.messages), side.result.text) for side in plan.candidates]
        try:
            scores = candidate_rewards(
                run=run, safety_run=safety_run, items=items, is_safety_prompt=plan.job.batch.is_safety
            )
        except Exception as exc:
            logger.warning("scoring the candidates of job %s failed", plan.job.pk, exc_info=True)
            detail = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
            plan.failure = failure(FailureCode.MODEL_MISSING, f"Scoring the candidates failed: {detail}")
            continue
        candidates = [
            pair_rules.Candidate(
                index=i,
                variant_id=side.variant.pk,
                temperature=side.request.temperature,
                text=side.result.text,
                reward=score["reward"],
                helpfulness=score["helpfulness"]["probability"] if safety_run else score["reward"],
                safety=score["safety"]["probability"] if safety_run else None,
            )
            for i, (side, score) in enumerate(zip(plan.candidates, scores, strict=True))
        ]
        choice = pair_rules.choose_pair(candidates, rule)
        if choice is None:
            plan.failure = failure(
                FailureCode.IDENTICAL, f"All {len(candidates)} candidates were identical or empty; no pair to compare."
            )
            continue
        plan.sides = [plan.candidates[choice.first], plan.candidates[choice.second]]
        plan.selection = {
            "rule": rule,
            "k": len(candidates),
            "reward_run": run.pk,
            "safety_run": safety_run.pk if safety_run else None,
            "chosen": [choice.first, choice.second],
            "gap": choice.gap,
            "fallback": choice.fallback,
            "candidates": [
                {
                    "index": c.index,
                    "variant": {"id": side.variant.pk, "name": side.variant.name, "version": side.variant.version},
                    "temperature": c.temperature,
                    "seed": side.request.seed,
                    "text": c.text,
                    "reward": c.reward,
                    "helpfulness": c.helpfulness,
                    "safety": c.safety,
                }
                for c, side in zip(candidates, plan.candidates, strict=True)
            ],
        }


def _generate(pending: list[tuple[PairPlan, PlannedSide]]) -> None:
    """One batched call per backend, the backends side by side (two endpoints answer at the same
    time); a failure fails the pairs that needed that backend."""
    groups: dict[tuple[str, ...], list[tuple[PairPlan, PlannedSide]]] = defaultdict(list)
    for plan, side in pending:
        if plan.failure is None:
            groups[backend_key(side.variant)].append((plan, side))
    if len(groups) == 1:
        _generate_or_isolate(next(iter(groups.values())))
        return
    with ThreadPoolExecutor(max_workers=min(4, len(groups)), thread_name_prefix="preflab-backend") as pool:
        list(pool.map(_generate_or_isolate, groups.values()))


def _generate_or_isolate(group: list[tuple[PairPlan, PlannedSide]]) -> None:
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


def _generate_group(group: list[tuple[PairPlan, PlannedSide]]) -> None:
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


def _fail_group(group: list[tuple[PairPlan, PlannedSide]], exc: BaseException) -> None:
    if not isinstance(exc, SamplingError | TemplateError):
        logger.error("sampling failed for jobs %s", sorted({p.job.pk for p, _ in group}), exc_info=exc)
    for plan, side in group:
        if plan.failure is None:
            plan.failure = failure_from_exception(exc, variant=str(side.variant))


def _generation_record(plan: PairPlan, side: PlannedSide, label: str) -> dict[str, Any]:
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
        "pair_selection": plan.selection,
        "job_seed": plan.job.seed,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "finish_reason": result.finish_reason,
        "seconds": round(result.seconds, 3),
        "backend": result.metadata,
    }


def _write(plan: PairPlan) -> str | None:
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
                job_mark_failed(job.pk, plan.failure, now)
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
        job_mark_failed(job.pk, outcome, timezone.now(), status=JobStatus.RUNNING, attempts=job.attempts)
        return JobStatus.FAILED


# --- warming the worker's models ---------------------------------------------------------------


_warmed: set[tuple[int, ...]] = set()


def sampling_warm_up(*, batch: Batch) -> list[int]:
    """Load the local models of the batch's pair policy ahead of the first prompt, so that the
    annotator who opens the rating page does not wait for torch and the model to load. Asked once
    per web process and set of variants; returns the variants asked to load."""
    policy = PairPolicy.objects.filter(batch=batch).first()
    if policy is None:
        return []
    active = policy.variants.filter(is_active=True)
    # A best-of-K variant samples with its base variant: that is the model to load.
    ids = sorted(
        set(active.filter(backend=Backend.TRANSFORMERS).values_list("pk", flat=True))
        | set(
            active.filter(backend=Backend.BEST_OF_K, base_variant__backend=Backend.TRANSFORMERS).values_list(
                "base_variant_id", flat=True
            )
        )
    )
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
