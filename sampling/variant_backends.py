"""The backend that samples for a model variant, built from its record and the worker's settings.

Backend objects are cheap; what is expensive (a loaded model) lives in TransformersBackend's
process-wide cache, so a worker keeps its models in memory between tasks. Requests of several
variants that share a backend (two system prompts on one checkpoint, say) go through one batched
call: `backend_key` says which variants can share.
"""

from __future__ import annotations

import threading
from pathlib import Path

from django.conf import settings

from sampling.backends import Backend as SamplingBackend
from sampling.backends import GenerationRequest, ModelUnavailable, OpenAIBackend
from sampling.embedded import ensure_embedded_checkpoint
from sampling.models import Backend, ChatTemplate, ModelVariant
from sampling.templates import Message, TemplateChoice

# A checkpoint path that means "the embedded SmolLM2-135M-Instruct, converted into the model cache":
# each host resolves it to its own cache, so the same variant works on the web host and any worker.
EMBEDDED_CHECKPOINT = "embedded:smollm2-135m-instruct"

_embedded_paths: dict[str, Path] = {}
_embedded_lock = threading.Lock()


def resolve_checkpoint(checkpoint_path: str) -> str:
    """A local path for a variant's checkpoint: the embedded model's converted copy, or the path as given."""
    if checkpoint_path.strip() != EMBEDDED_CHECKPOINT:
        return checkpoint_path
    cache = str(settings.PREFLAB_MODEL_CACHE)
    with _embedded_lock:
        # Hashing the GGUF to find its conversion takes a moment: once per process is enough.
        if cache not in _embedded_paths:
            _embedded_paths[cache] = ensure_embedded_checkpoint(cache)
        return str(_embedded_paths[cache])


def configure_torch_threads() -> None:
    """Apply PREFLAB_TORCH_THREADS (process-wide) before local generation."""
    import torch

    threads = settings.PREFLAB_TORCH_THREADS
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def backend_key(variant: ModelVariant) -> tuple[str, ...]:
    """Variants with the same key are served by one backend, so their requests batch together."""
    if variant.backend == Backend.TRANSFORMERS:
        return ("transformers", variant.checkpoint_path.strip())
    if variant.backend == Backend.OPENAI:
        return ("openai", variant.base_url.strip(), variant.api_model.strip(), variant.api_key_env.strip())
    if variant.backend == Backend.BEST_OF_K:
        return ("best_of_k", str(variant.pk))
    return ("external", str(variant.pk))


def backend_for(variant: ModelVariant) -> SamplingBackend:
    if variant.backend == Backend.TRANSFORMERS:
        if not variant.checkpoint_path.strip():
            raise ModelUnavailable("no checkpoint path is set")
        configure_torch_threads()
        from sampling.backends.transformers_backend import TransformersBackend

        return TransformersBackend(
            resolve_checkpoint(variant.checkpoint_path.strip()),
            device=settings.PREFLAB_SAMPLING_DEVICE,
            cache_dir=settings.PREFLAB_MODEL_CACHE,
            max_batch_size=settings.PREFLAB_SAMPLING_MAX_BATCH_SIZE,
        )
    if variant.backend == Backend.OPENAI:
        return OpenAIBackend(
            variant.base_url.strip(),
            variant.api_model.strip(),
            api_key_env=variant.api_key_env.strip() or None,
            timeout=(settings.PREFLAB_OPENAI_CONNECT_TIMEOUT, settings.PREFLAB_OPENAI_READ_TIMEOUT),
            max_attempts=settings.PREFLAB_OPENAI_MAX_ATTEMPTS,
            backoff_base=settings.PREFLAB_OPENAI_BACKOFF_BASE,
            backoff_max=settings.PREFLAB_OPENAI_BACKOFF_MAX,
        )
    if variant.backend == Backend.BEST_OF_K:
        return best_of_k_backend(variant)
    raise ModelUnavailable(f"variant {variant} holds imported responses and cannot sample new ones")


def best_of_k_backend(variant: ModelVariant) -> SamplingBackend:
    """The rejection-sampling backend of a best-of-K variant: its base variant's backend sampled K
    times, ranked by its reward model (the hybrid reward with a safety model; the prompt is taken
    as a helpfulness prompt, so the safety model decides only when it finds a sample likely unsafe)."""
    from sampling.backends.best_of_k import BestOfKBackend

    base, run = variant.base_variant, variant.reward_run
    if base is None or run is None or not variant.best_of_k:
        raise ModelUnavailable(f"best-of-K variant {variant} needs a base variant, a reward model and K")
    safety_run = variant.safety_run

    def scorer(items):
        from rewardmodel.services.rewards import candidate_rewards

        return candidate_rewards(run=run, safety_run=safety_run, items=items)

    return BestOfKBackend(
        backend_for(base),
        variant.best_of_k,
        scorer,
        description={
            "base_variant": {"id": base.pk, "name": base.name, "version": base.version},
            "reward_run": {"id": run.pk, "name": run.name, "kind": run.kind},
            "safety_run": {"id": safety_run.pk, "name": safety_run.name} if safety_run else None,
            "ranking": "hybrid" if safety_run else run.kind,
        },
    )


def generating_variant(variant: ModelVariant) -> ModelVariant:
    """The variant whose prompt, template and decoding settings a request uses: a best-of-K variant
    samples with its base variant's."""
    seen = set()
    while variant.backend == Backend.BEST_OF_K and variant.base_variant is not None and variant.pk not in seen:
        seen.add(variant.pk)
        variant = variant.base_variant
    return variant


def template_for(variant: ModelVariant) -> TemplateChoice:
    """The model's own chat template (the Llama 2 one when it has none), or Llama 2's when asked for."""
    return "llama2" if variant.chat_template == ChatTemplate.LLAMA2 else "auto"


def request_for(
    variant: ModelVariant,
    messages: list[Message],
    *,
    temperature: float,
    seed: int,
    max_new_tokens: int | None = None,
) -> GenerationRequest:
    variant = generating_variant(variant)
    # A dialogue that brings its own system message (imported data) keeps it instead of the variant's.
    own_system = bool(messages) and messages[0].get("role") == "system"
    return GenerationRequest(
        messages=messages,
        system=None if own_system else variant.system_prompt or None,
        temperature=temperature,
        top_p=variant.top_p,
        max_new_tokens=max_new_tokens or variant.max_new_tokens,
        seed=seed,
        template=template_for(variant),
    )
