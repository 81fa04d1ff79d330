"""Pair policies: which variants and temperatures sample a batch's pairs, and the snapshot of a
policy that each generation job and response keeps.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import User
from annotation.models import Batch
from config.exceptions import Conflict, InvalidInput, NotFound

from ..draws import PolicyError, TemperatureSpec
from ..models import SAMPLED_BACKENDS, ModelVariant, PairPolicy, TemperatureMode
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


def sampling_policy_for(batch: Batch) -> PairPolicy:
    """The batch's pair policy, or a refusal when it has no usable variant to sample from."""
    policy = PairPolicy.objects.filter(batch=batch).first()
    if policy is None or not policy.variants.filter(is_active=True, backend__in=SAMPLED_BACKENDS).exists():
        raise Conflict(
            "This batch has no model to sample from yet: a researcher has to set its pair policy.", field="batch"
        )
    return policy
