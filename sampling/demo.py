"""The sampling part of the demo workspace (called from annotation.demo.load_demo): two model
variants on the embedded SmolLM2-135M-Instruct that really differ, and a batch where annotators
write the prompts, with a pair policy over both variants and three temperatures.

Idempotent: running it again keeps what exists and adds nothing twice.
"""

import sys
import time

from django.conf import settings

from accounts.models import User
from annotation import services as annotation_services
from annotation.models import Batch, Focus, PromptMode

from . import services
from .models import ModelVariant, PairPolicy
from .variant_backends import EMBEDDED_CHECKPOINT, resolve_checkpoint

BATCH_NAME = "Week 1 · annotator prompts"
TEMPERATURES = [0.6, 0.8, 1.0]
VARIANTS = [
    {
        "name": "smollm2-concise",
        "description": "SmolLM2-135M-Instruct told to be short and factual; nucleus 0.9.",
        "system_prompt": "You are a concise, factual assistant. Answer in at most three sentences. "
        "If you are not sure, say so.",
        "top_p": 0.9,
    },
    {
        "name": "smollm2-friendly",
        "description": "SmolLM2-135M-Instruct as a warm tutor who explains; nucleus 0.95.",
        "system_prompt": "You are a warm, patient tutor. Explain your answer in plain words, step by step, "
        "and give a short example when it helps.",
        "top_p": 0.95,
    },
]
PROMPT_GUIDELINES = """Write a prompt you would really ask an assistant: a question, a task, a request for advice or
a piece of writing. Vary the topics. Then read both responses and choose the one that better fulfils your request.
After rating you may continue the dialogue: the response you chose becomes the assistant's turn and you write the
next message. Never write personal data."""


def ensure_embedded_model() -> None:
    """Convert the embedded GGUF into the model cache now, so the first prompt is sampled at once."""
    started = time.perf_counter()
    sys.stdout.write(
        f"Preparing the embedded model SmolLM2-135M-Instruct in {settings.PREFLAB_MODEL_CACHE} "
        "(the first time, the GGUF is converted into a safetensors checkpoint: ~20-40 s)...\n"
    )
    sys.stdout.flush()
    checkpoint = resolve_checkpoint(EMBEDDED_CHECKPOINT)
    sys.stdout.write(f"  model ready at {checkpoint} ({time.perf_counter() - started:.1f} s)\n")


def ensure_variants(researcher: User | None) -> list[ModelVariant]:
    variants = []
    for spec in VARIANTS:
        existing = ModelVariant.objects.filter(name=spec["name"]).order_by("-version").first()
        variants.append(
            existing
            or services.variant_create(
                backend="transformers",
                checkpoint_path=EMBEDDED_CHECKPOINT,
                chat_template="model",
                # Short enough that a CPU-only demo shows the pair within seconds (~12 tokens/s here).
                max_new_tokens=96,
                created_by=researcher,
                **spec,
            )
        )
    return variants


def load_sampling_demo(*, researcher: User | None, guidelines: str) -> dict:
    ensure_embedded_model()
    variants = ensure_variants(researcher)
    batch = Batch.objects.filter(name=BATCH_NAME).first()
    if batch is None:
        batch = annotation_services.batch_create(
            name=BATCH_NAME,
            focus=Focus.HELPFULNESS,
            guidelines=f"{PROMPT_GUIDELINES}\n\n{guidelines}",
            prompt_mode=PromptMode.ANNOTATOR,
            created_by=researcher,
        )
    if not PairPolicy.objects.filter(batch=batch).exists():
        services.pair_policy_set(
            batch=batch,
            variant_ids=[v.pk for v in variants if v.is_active],
            temperature_mode="set",
            temperatures=TEMPERATURES,
            updated_by=researcher,
        )
    return {"batch": batch, "variants": variants}
