"""Model variants: named, versioned generation settings. A change to how a variant generates makes a
new version, retires the old one and moves open batches' pair policies onto it; responses keep
pointing at the version that wrote them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import User
from config.exceptions import Conflict, InvalidInput

from ..models import GENERATION_FIELDS, Backend, ChatTemplate, ModelVariant, PairPolicy
from ..templates import find_control_tags
from ..variant_backends import EMBEDDED_CHECKPOINT
from .validation import FORBIDDEN_MARKUP, MAX_NEW_TOKENS_LIMIT

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    if backend == Backend.BEST_OF_K:
        best_of_k_validate(fields)
    elif any(fields.get(key) for key in BEST_OF_K_FIELDS):
        raise InvalidInput("Base variant, reward models and K belong to a best-of-K variant only.", field="backend")
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


BEST_OF_K_FIELDS = ("base_variant", "reward_run", "safety_run", "best_of_k")


def best_of_k_validate(fields: dict[str, Any]) -> None:
    """A best-of-K variant wraps a variant that samples, with a saved reward model and 2 ≤ K ≤ the cap."""
    base, run, safety_run, k = (fields.get(key) for key in BEST_OF_K_FIELDS)
    if base is None:
        raise InvalidInput("Choose the variant whose samples are ranked.", field="base_variant")
    if base.backend not in (Backend.TRANSFORMERS, Backend.OPENAI):
        raise InvalidInput(f"{base} cannot sample new responses itself; wrap a model that does.", field="base_variant")
    if not base.is_active:
        raise InvalidInput(f"{base} is retired; choose its newest version.", field="base_variant")
    limit = settings.PREFLAB_BEST_OF_K_MAX
    if k is None or not 2 <= k <= limit:
        raise InvalidInput(f"K must be between 2 and {limit}.", field="best_of_k")
    for model, field in ((run, "reward_run"), (safety_run, "safety_run")):
        if model is None:
            if field == "reward_run":
                raise InvalidInput("Choose the reward model that ranks the samples.", field=field)
            continue
        if model.status not in ("succeeded", "cancelled") or not model.output_path:
            raise InvalidInput(f"{model.name} has no saved model yet.", field=field)
    if safety_run is not None:
        if safety_run.kind != "safety":
            raise InvalidInput(f"{safety_run.name} is a {safety_run.kind} model.", field="safety_run")
        if run.kind != "helpfulness":
            raise InvalidInput(
                f"With a safety model the hybrid reward needs a helpfulness model; {run.name} is {run.kind}.",
                field="reward_run",
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
    base_variant: ModelVariant | None = None,
    reward_run: Any = None,
    safety_run: Any = None,
    best_of_k: int | None = None,
) -> ModelVariant:
    """Register version 1 of a new model variant. A best-of-K variant (``backend="best_of_k"``) names
    the variant it samples from, the reward model (and optional safety model) that ranks, and K."""
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
        "base_variant": base_variant,
        "reward_run": reward_run,
        "safety_run": safety_run,
        "best_of_k": best_of_k,
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
