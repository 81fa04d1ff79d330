"""Using trained reward models: score a (dialogue, response), Llama 2's hybrid reward over a
helpfulness and a safety model, and a best-of-K preview (sample K responses from a model variant,
rank them by reward: the rejection sampling of Llama 2, section 3.2.3, for one prompt).

A best-of-K preview generates, so it is background work on the sampling queue (core.jobs): the
request validates and stores a `BestOfKPreview` (`best_of_k_preview_create`), a sampling worker
claims it, samples and scores (`best_of_k_preview_run`, which calls `best_of_k`) and stores the
ranking or a clear error. No HTTP request runs a generation.

Models are loaded in this process through `rewardmodel.scoring.load_reward_model`, which keeps the
two most recently used in memory: the helpfulness and the safety model that the hybrid needs.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from config.exceptions import Conflict, DomainError, InvalidInput, NotFound
from core import jobs
from preference_data.models import JobStatus
from sampling.models import SAMPLED_BACKENDS, ModelVariant

from ..models import BestOfKPreview, RunStatus, TrainingRun

logger = logging.getLogger(__name__)

BEST_OF_K = "rewardmodel.best_of_k"
# Seeds stay exact in JSON and JavaScript numbers (the pages show them).
_MAX_SEED = 2**53 - 1

Message = dict[str, str]
_ROLES = ("system", "user", "assistant")
_TURN = re.compile(r"^(system|user|assistant)\s*:\s?", re.IGNORECASE)


class SamplingFailed(DomainError):
    status_code = 502
    code = "sampling_failed"


def parse_dialogue(text: str) -> list[Message]:
    """Messages from a transcript: a line starting ``User:``, ``Assistant:`` or ``System:`` opens a
    turn; text before any such line (or text with none) is one user turn."""
    messages: list[Message] = []
    for line in (text or "").replace("\r\n", "\n").split("\n"):
        match = _TURN.match(line)
        if match:
            messages.append({"role": match.group(1).lower(), "content": line[match.end() :]})
        elif messages:
            messages[-1]["content"] += "\n" + line
        elif line.strip():
            messages.append({"role": "user", "content": line})
    return [{"role": m["role"], "content": m["content"].strip()} for m in messages]


def dialogue_text(messages: Sequence[Message]) -> str:
    """The transcript that `parse_dialogue` reads back: a lone user turn as plain text, else one
    ``Role: text`` line per turn."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in messages)


def validate_context(context: Sequence[Any]) -> list[Message]:
    """The dialogue before the response: messages with a known role and text, ending with a user turn."""
    if not context:
        raise InvalidInput("Give the dialogue: at least the user's prompt.", field="context")
    messages = []
    for index, message in enumerate(context):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise InvalidInput(f"Message {index + 1} needs a role: system, user or assistant.", field="context")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise InvalidInput(f"Message {index + 1} has no text.", field="context")
        messages.append({"role": message["role"], "content": content})
    if messages[-1]["role"] != "user":
        raise InvalidInput("The dialogue must end with the user's turn that the response answers.", field="context")
    return messages


def _response(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("Give the response to score.", field="response")
    return text


def _check_saved(run: TrainingRun, field: str = "run") -> None:
    if run.status not in (RunStatus.SUCCEEDED, RunStatus.CANCELLED) or not run.output_path:
        raise Conflict(f"Run {run.pk} ({run.name}) has no saved model yet.", field=field)


def _model(run: TrainingRun):
    from sampling.variant_backends import configure_torch_threads

    from ..scoring import load_reward_model

    _check_saved(run)
    if not run.model_dir.is_dir():
        raise Conflict(f"The model of run {run.pk} is no longer in storage.", field="run")
    configure_torch_threads()
    return load_reward_model(run.model_dir)


def _rewards(run: TrainingRun, items: list[tuple[list[Message], str]]) -> list[float]:
    from ..scoring import score_many

    model, tokenizer = _model(run)
    return score_many(model, tokenizer, items)


def _check_pair(helpfulness_run: TrainingRun, safety_run: TrainingRun) -> None:
    if helpfulness_run.kind != "helpfulness":
        raise InvalidInput(f"{helpfulness_run.name} is a {helpfulness_run.kind} model.", field="helpfulness_run")
    if safety_run.kind != "safety":
        raise InvalidInput(f"{safety_run.name} is a {safety_run.kind} model.", field="safety_run")


def _hybrid(helpful: float, safety: float, is_safety_prompt: bool) -> dict[str, Any]:
    from ..scoring import SAFETY_THRESHOLD, hybrid_reward, sigmoid

    safety_probability = sigmoid(safety)
    if is_safety_prompt:
        used, reason = "safety", "a safety prompt: the safety model decides"
    elif safety_probability < SAFETY_THRESHOLD:
        used, reason = "safety", f"safety score {safety_probability:.3f} < {SAFETY_THRESHOLD}: likely unsafe"
    else:
        used, reason = "helpfulness", f"safety score {safety_probability:.3f} ≥ {SAFETY_THRESHOLD}"
    return {
        "reward": hybrid_reward(helpful, safety, is_safety_prompt),
        "used": used,
        "reason": reason,
        "helpfulness": {"reward": helpful, "probability": sigmoid(helpful)},
        "safety": {"reward": safety, "probability": safety_probability},
        "threshold": SAFETY_THRESHOLD,
    }


def reward_score(*, run: TrainingRun, context: Sequence[Any], response: str) -> dict[str, Any]:
    """One model's reward: the raw scalar head output and its sigmoid (the scale the hybrid uses)."""
    from ..scoring import sigmoid

    messages, text = validate_context(context), _response(response)
    reward = _rewards(run, [(messages, text)])[0]
    return {"run": run.pk, "kind": run.kind, "reward": reward, "probability": sigmoid(reward)}


def reward_score_many(*, run: TrainingRun, items: Sequence[dict[str, Any]], chunk: int = 32) -> Iterator[dict]:
    """Rewards of many (context, response) items, one dict per item in order, computed a chunk at a time.

    Every item is checked before anything is scored, so a bad item is a 4xx naming its index and no
    half-answered stream; the model is loaded once. The returned iterator does the scoring as it is read.
    """
    from ..scoring import sigmoid

    checked = []
    for index, item in enumerate(items):
        try:
            checked.append((validate_context(item.get("context") or []), _response(item.get("response"))))
        except InvalidInput as exc:
            raise InvalidInput(f"Item {index}: {exc.detail}", field=f"items[{index}].{exc.field}") from None
    if not checked:
        raise InvalidInput("Give at least one item to score.", field="items")
    model, tokenizer = _model(run)

    def scored() -> Iterator[dict]:
        from ..scoring import score_many

        for start in range(0, len(checked), chunk):
            rewards = score_many(model, tokenizer, checked[start : start + chunk], batch_size=chunk)
            for offset, reward in enumerate(rewards):
                yield {"index": start + offset, "reward": reward, "probability": sigmoid(reward)}

    return scored()


def hybrid_score(
    *,
    helpfulness_run: TrainingRun,
    safety_run: TrainingRun,
    context: Sequence[Any],
    response: str,
    is_safety_prompt: bool = False,
) -> dict[str, Any]:
    """Llama 2's hybrid reward: the safety model's score for a safety prompt or when it is below
    0.15, else the helpfulness model's (both as sigmoid probabilities)."""
    _check_pair(helpfulness_run, safety_run)
    messages, text = validate_context(context), _response(response)
    helpful = _rewards(helpfulness_run, [(messages, text)])[0]
    safety = _rewards(safety_run, [(messages, text)])[0]
    return {
        "helpfulness_run": helpfulness_run.pk,
        "safety_run": safety_run.pk,
        "is_safety_prompt": is_safety_prompt,
        **_hybrid(helpful, safety, is_safety_prompt),
    }


def candidate_rewards(
    *,
    run: TrainingRun,
    items: Sequence[tuple[Sequence[Message], str]],
    safety_run: TrainingRun | None = None,
    is_safety_prompt: bool = False,
) -> list[dict[str, Any]]:
    """Each (context, response)'s reward to rank on, as a probability: ``run``'s sigmoid, or with
    ``safety_run`` Llama 2's hybrid (``run`` then being the helpfulness model), with its details.
    Loads the models in this process: call it from a worker (best-of-K, pair rules), never a request."""
    from ..scoring import sigmoid

    items = [(list(context), text) for context, text in items]
    rewards = _rewards(run, items)
    if safety_run is None:
        return [{"reward": sigmoid(r), "raw_reward": r} for r in rewards]
    safety_rewards = _rewards(safety_run, items)
    return [_hybrid(h, s, is_safety_prompt) for h, s in zip(rewards, safety_rewards, strict=True)]


def best_of_k_validate(
    *,
    variant: ModelVariant,
    context: Sequence[Any],
    k: int,
    run: TrainingRun,
    safety_run: TrainingRun | None = None,
    temperature: float = 0.6,
    max_new_tokens: int | None = None,
    seed: int | None = None,
) -> list[Message]:
    """Refuse a best-of-K preview that cannot run, before anything is queued; the dialogue's messages.

    ``k`` is capped (PREFLAB_BEST_OF_K_MAX): the K responses are sampled in one batch on a worker.
    """
    from sampling.variant_backends import request_for

    limit = settings.PREFLAB_BEST_OF_K_MAX
    if not 1 <= k <= limit:
        raise InvalidInput(f"K must be between 1 and {limit}.", field="k")
    if not 0 <= temperature <= 2:
        raise InvalidInput("The temperature must be between 0 and 2.", field="temperature")
    if seed is not None and not 0 <= seed <= _MAX_SEED - k:
        raise InvalidInput(f"The seed must be between 0 and {_MAX_SEED - k}.", field="seed")
    if variant.backend not in SAMPLED_BACKENDS or not variant.is_active:
        raise InvalidInput(f"{variant} cannot sample new responses.", field="variant")
    if safety_run is not None:
        _check_pair(run, safety_run)
    _check_saved(run)
    if safety_run is not None:
        _check_saved(safety_run, "safety_run")
    messages = validate_context(context)
    try:
        request_for(variant, messages, temperature=temperature, seed=seed or 0, max_new_tokens=max_new_tokens)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    return messages


def best_of_k(
    *,
    variant: ModelVariant,
    context: Sequence[Any],
    k: int,
    run: TrainingRun,
    safety_run: TrainingRun | None = None,
    is_safety_prompt: bool = False,
    temperature: float = 0.6,
    max_new_tokens: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Sample ``k`` responses from ``variant`` in one batched call and rank them by reward, best first.

    With ``safety_run`` the ranking uses the hybrid reward (``run`` is then the helpfulness model);
    otherwise ``run``'s reward. It generates: call it from a sampling worker (`best_of_k_preview_run`),
    never from a request.
    """
    from sampling.failures import failure_from_exception
    from sampling.variant_backends import backend_for, request_for

    messages = best_of_k_validate(
        variant=variant,
        context=context,
        k=k,
        run=run,
        safety_run=safety_run,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
    )
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    requests = [
        request_for(variant, messages, temperature=temperature, seed=seed + i, max_new_tokens=max_new_tokens)
        for i in range(k)
    ]
    started = time.perf_counter()
    try:
        results = backend_for(variant).generate_batch(requests)
    except Exception as exc:
        raise SamplingFailed(failure_from_exception(exc, variant=str(variant)).detail) from exc
    sampled = time.perf_counter()
    items = [(messages, result.text) for result in results]
    scores = candidate_rewards(run=run, safety_run=safety_run, items=items, is_safety_prompt=is_safety_prompt)
    candidates = [{"index": i, **score} for i, score in enumerate(scores)]
    for candidate, request, result in zip(candidates, requests, results, strict=True):
        candidate.update(
            text=result.text,
            seed=request.seed,
            completion_tokens=result.completion_tokens,
            finish_reason=result.finish_reason,
        )
    ranked = sorted(candidates, key=lambda c: c["reward"], reverse=True)
    for rank, candidate in enumerate(ranked, start=1):
        candidate["rank"] = rank
    return {
        "variant": variant.pk,
        "variant_name": str(variant),
        "k": k,
        "temperature": temperature,
        "seed": seed,
        "ranking": "hybrid" if safety_run is not None else run.kind,
        "candidates": ranked,
        "sampling_seconds": sampled - started,
        "scoring_seconds": time.perf_counter() - sampled,
    }


# --- best-of-K previews as background work ------------------------------------------------------


def register_background_work() -> None:
    """Best-of-K previews generate, so they go to the sampling queue; a preview whose worker died is
    sampled again with the same seed, up to PREFLAB_SAMPLING_MAX_ATTEMPTS runs, then failed."""
    jobs.register(
        jobs.JobKind(
            name=BEST_OF_K,
            rows=BestOfKPreview.objects.all,
            task="rewardmodel.best_of_k_preview",
            queue="sampling",
            stale_seconds=lambda: settings.PREFLAB_SAMPLING_STALE_SECONDS,
            max_attempts=lambda: settings.PREFLAB_SAMPLING_MAX_ATTEMPTS,
            give_up=lambda row: {
                "error": f"The sampling worker stopped after attempt {row.attempts} (restarted or out of "
                "memory) and the preview was not tried again. Start a new preview."
            },
            queued=JobStatus.QUEUED,
            running=(JobStatus.RUNNING,),
        )
    )


def best_of_k_preview_create(
    *,
    created_by: User | None,
    variant: ModelVariant,
    context: Sequence[Any],
    k: int,
    run: TrainingRun,
    safety_run: TrainingRun | None = None,
    is_safety_prompt: bool = False,
    temperature: float = 0.6,
    max_new_tokens: int | None = None,
    seed: int | None = None,
) -> BestOfKPreview:
    """Check the preview can run (the same refusals as `best_of_k`, before anything is written) and
    queue it on the sampling queue. The seed is fixed here, so every attempt samples the same."""
    messages = best_of_k_validate(
        variant=variant,
        context=context,
        k=k,
        run=run,
        safety_run=safety_run,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
    )
    with transaction.atomic():
        preview = BestOfKPreview.objects.create(
            variant=variant,
            run=run,
            safety_run=safety_run,
            context=messages,
            k=k,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            seed=random.SystemRandom().randrange(2**31) if seed is None else seed,
            is_safety_prompt=is_safety_prompt,
            created_by=created_by,
        )
        jobs.enqueue(BEST_OF_K, [preview.pk])
    return preview


def best_of_k_preview_run(*, preview_id: int) -> BestOfKPreview:
    """Sample and rank a queued preview and store the ranking, or the reason it failed (the task's body).

    A delivery that finds the preview finished, or held by a live worker, changes nothing; one that
    lost its claim meanwhile (its heartbeat went stale and another delivery took over) writes nothing.
    """
    attempt = jobs.claim(BEST_OF_K, preview_id, started_at=timezone.now(), error="")
    preview = BestOfKPreview.objects.select_related("variant", "run", "safety_run").filter(pk=preview_id).first()
    if preview is None:
        raise NotFound(f"No best-of-K preview {preview_id}.")
    if attempt is None:
        return preview
    mine = BestOfKPreview.objects.filter(pk=preview_id, attempts=attempt, status=JobStatus.RUNNING)
    try:
        with jobs.heartbeat(BEST_OF_K, [preview_id]):  # loading a local model takes long too
            result = best_of_k(
                variant=preview.variant,
                context=preview.context,
                k=preview.k,
                run=preview.run,
                safety_run=preview.safety_run,
                is_safety_prompt=preview.is_safety_prompt,
                temperature=preview.temperature,
                max_new_tokens=preview.max_new_tokens,
                seed=preview.seed,
            )
        mine.update(status=JobStatus.DONE, result=result, error="", finished_at=timezone.now())
    except Exception as exc:
        if not isinstance(exc, DomainError):
            logger.exception("best-of-K preview %s failed", preview_id)
        detail = exc.detail if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        mine.update(status=JobStatus.FAILED, error=detail, finished_at=timezone.now())
    preview.refresh_from_db()
    return preview
