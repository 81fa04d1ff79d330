"""Sampling: prompt limits, how generation jobs are batched and recovered, local models and endpoints."""

import os

from .env import env_int, env_str

# What an annotator may write: longer prompts are refused with a message saying by how much.
PREFLAB_MAX_PROMPT_CHARS = env_int("PREFLAB_MAX_PROMPT_CHARS", 4000)
# Turns a dialogue may reach (user and assistant together) before a new prompt is asked for.
PREFLAB_MAX_DIALOGUE_TURNS = env_int("PREFLAB_MAX_DIALOGUE_TURNS", 16)
# Pairs one task claims together (its own and other waiting ones): their responses share generate calls.
PREFLAB_SAMPLING_BATCH_JOBS = env_int("PREFLAB_SAMPLING_BATCH_JOBS", 8)
# Prompts per `generate` call of a local model (TransformersBackend.max_batch_size).
PREFLAB_SAMPLING_MAX_BATCH_SIZE = env_int("PREFLAB_SAMPLING_MAX_BATCH_SIZE", 16)
# Most prompts one "fill from the prompt pool" may queue.
PREFLAB_FILL_MAX = env_int("PREFLAB_FILL_MAX", 1000)
# "auto": CUDA (bfloat16) when the worker has a GPU, else the CPU (float32).
PREFLAB_SAMPLING_DEVICE = env_str("PREFLAB_SAMPLING_DEVICE", "auto")
# torch CPU threads for local generation; 0 picks half the cores (at most 8). On small shared
# machines torch's default of one thread per core spin-waits: 1 thread was several times faster on 2 cores.
PREFLAB_TORCH_THREADS = env_int("PREFLAB_TORCH_THREADS", 0) or max(1, min(8, (os.cpu_count() or 2) // 2))
# A running job without a heartbeat (core.jobs, every PREFLAB_JOBS_HEARTBEAT_SECONDS) for this long lost
# its worker (killed, out of memory): the reconciler queues it again, up to PREFLAB_SAMPLING_MAX_ATTEMPTS
# runs in all, then fails it with a message that says so.
PREFLAB_SAMPLING_STALE_SECONDS = float(env_str("PREFLAB_SAMPLING_STALE_SECONDS", "60"))
PREFLAB_SAMPLING_MAX_ATTEMPTS = env_int("PREFLAB_SAMPLING_MAX_ATTEMPTS", 2)
# OpenAI-compatible endpoints: (connect, read) timeouts and retries with capped, jittered backoff.
PREFLAB_OPENAI_CONNECT_TIMEOUT = float(env_str("PREFLAB_OPENAI_CONNECT_TIMEOUT", "5"))
PREFLAB_OPENAI_READ_TIMEOUT = float(env_str("PREFLAB_OPENAI_READ_TIMEOUT", "120"))
PREFLAB_OPENAI_MAX_ATTEMPTS = env_int("PREFLAB_OPENAI_MAX_ATTEMPTS", 4)
PREFLAB_OPENAI_BACKOFF_BASE = float(env_str("PREFLAB_OPENAI_BACKOFF_BASE", "0.5"))
PREFLAB_OPENAI_BACKOFF_MAX = float(env_str("PREFLAB_OPENAI_BACKOFF_MAX", "8"))
