"""Writes of sampling: model variants and their versions, pair policies, and the generation jobs
that turn a prompt into a comparison.

A prompt becomes a pair in three steps. (1) `prompt_submit`, `dialogue_continue` or
`batch_fill_from_pool` (`job_queue.py`) validate the text (`validation.py`) and write, in one
transaction, the dialogue's new turns and a queued GenerationJob holding a snapshot of the batch's
pair policy (`policies.py`); the job is sent to the sampling queue after commit (`core.jobs.enqueue`).
(2) `generation_run` (`generation.py`), on a worker, claims its jobs and other waiting ones, draws
two variants and two temperatures per job from the job's seed, and samples every response with one
batched call per backend, sampling a side again while the two texts are identical. (3) Each job's
two Responses, its Comparison and, for an annotator-written prompt, the writer's lease are written
in one transaction, or the job is marked failed with a message, so a crash at any point leaves a
queued, running or failed job and never half a pair. Model variants and their versions live in
`variants.py`.

Every public name is re-exported here: callers write ``from sampling import services`` and
``services.prompt_submit(...)`` without knowing which module holds it.
"""

from .generation import RunSummary, generation_run, sampling_warm_up, variants_warm_up
from .job_queue import (
    GENERATION,
    batch_fill_from_pool,
    dialogue_continue,
    job_retry,
    prompt_submit,
    register_background_work,
)
from .policies import MAX_RESAMPLE_ATTEMPTS, pair_policy_set, policy_snapshot, usable_variants
from .validation import FORBIDDEN_MARKUP, MAX_NEW_TOKENS_LIMIT, prompt_text_validate
from .variants import VariantChange, variant_create, variant_update, variant_validate

__all__ = [
    "FORBIDDEN_MARKUP",
    "GENERATION",
    "MAX_NEW_TOKENS_LIMIT",
    "MAX_RESAMPLE_ATTEMPTS",
    "RunSummary",
    "VariantChange",
    "batch_fill_from_pool",
    "dialogue_continue",
    "generation_run",
    "job_retry",
    "pair_policy_set",
    "policy_snapshot",
    "prompt_submit",
    "prompt_text_validate",
    "register_background_work",
    "sampling_warm_up",
    "usable_variants",
    "variant_create",
    "variant_update",
    "variant_validate",
    "variants_warm_up",
]
