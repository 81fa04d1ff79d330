"""Pair policies: which variants and temperatures sample a batch's pairs, and the snapshot of a
policy that each generation job and response keeps.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import User
from annotation.models import Batch
from config.exceptions import Conflict, InvalidInput, NotFound

from ..draws import PolicyError, TemperatureSpec
from ..models import SAMPLED_BACKENDS, ModelVariant, PairPolicy, PairSelection, TemperatureMode
from .validation import MAX_NEW_TOKENS_LIMIT

MAX_RESAMPLE_ATTEMPTS = 10


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
    selection: str = PairSelection.RANDOM,
    candidates: int = 4,
    reward_run: Any = None,
    safety_run: Any = None,
) -> PairPolicy:
    """Set which variants and temperatures sample the batch's pairs (creates the policy if needed).

    With a `selection` other than random, each prompt is sampled `candidates` times across the
    variants and temperatures, scored by `reward_run` (and `safety_run`), and the rule picks the pair.
    """
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
    selection_validate(selection=selection, candidates=candidates, reward_run=reward_run, safety_run=safety_run)
    with transaction.atomic():
        policy, _ = PairPolicy.objects.update_or_create(
            batch=batch,
            defaults={
                "temperature_mode": spec.mode,
                "temperatures": list(spec.values),
                "max_new_tokens": max_new_tokens,
                "max_resample_attempts": max_resample_attempts,
                "selection": selection,
                "candidates": candidates,
                "reward_run": reward_run if selection != PairSelection.RANDOM else None,
                "safety_run": safety_run if selection != PairSelection.RANDOM else None,
                "updated_by": updated_by,
            },
        )
        policy.variants.set(variants)
    return policy


def selection_validate(*, selection: str, candidates: int, reward_run: Any, safety_run: Any) -> None:
    """A reward-model-chosen pair needs a saved reward model (two, helpfulness and safety, for
    'disagree') and 3 to PREFLAB_BEST_OF_K_MAX candidates to choose from."""
    if selection not in PairSelection.values:
        raise InvalidInput(
            f"Unknown pair selection {selection!r}; use {', '.join(PairSelection.values)}.", field="selection"
        )
    if selection == PairSelection.RANDOM:
        return
    limit = settings.PREFLAB_BEST_OF_K_MAX
    if not 3 <= candidates <= limit:
        raise InvalidInput(
            f"Sample between 3 and {limit} candidates for the reward model to choose from.", field="candidates"
        )
    if reward_run is None:
        raise InvalidInput("Choose the reward model that scores the candidates.", field="reward_run")
    for model, field in ((reward_run, "reward_run"), (safety_run, "safety_run")):
        if model is not None and (model.status not in ("succeeded", "cancelled") or not model.output_path):
            raise InvalidInput(f"{model.name} has no saved model yet.", field=field)
    if selection == PairSelection.DISAGREE:
        if safety_run is None:
            raise InvalidInput("'Disagree' compares a helpfulness and a safety model: choose both.", field="safety_run")
        if reward_run.kind != "helpfulness" or safety_run.kind != "safety":
            raise InvalidInput(
                "'Disagree' needs a helpfulness model and a safety model, in that order.", field="reward_run"
            )
    elif safety_run is not None and (reward_run.kind != "helpfulness" or safety_run.kind != "safety"):
        raise InvalidInput("The hybrid reward needs a helpfulness model and a safety model.", field="safety_run")


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
        "selection": policy.selection,
        "candidates": policy.candidates,
        "reward_run": policy.reward_run_id,
        "safety_run": policy.safety_run_id,
        "updated_at": policy.updated_at.isoformat() if policy.updated_at else None,
    }


def sampling_policy_for(batch: Batch) -> PairPolicy:
    """The batch's pair policy, or a refusal when it has no usable variant to sample from."""
    policy = PairPolicy.objects.filter(batch=batch).first()
    if policy is None or not policy.variants.filter(is_active=True, backend__in=SAMPLED_BACKENDS).exists():
        raise Conflict(
            "This batch has no model to sample from yet: a researcher has to set its pair policy.", field="batch"
        )
    return policy
