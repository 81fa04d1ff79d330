"""Batched against one-at-a-time generation with ``TransformersBackend`` on the embedded model.

The same N requests (SmolLM2-135M-Instruct, Llama 2's reference sampling settings, a fixed seed
per request) run once one request per ``generate`` call and once in batches, and the table gives
responses per second, completion tokens per second and the batched/sequential ratio. Because the
backend samples every row with its own seeded generator, both runs draw the same tokens (up to
floating-point differences of padded batches), so the two runs do comparable work; the table says
how many responses came out identical.

    .venv/bin/python benchmarks/sampling_backends.py                       # 16 prompts, CPU or CUDA
    .venv/bin/python benchmarks/sampling_backends.py --device cuda --prompts 64 --batch-size 32
    .venv/bin/python benchmarks/sampling_backends.py --threads 1           # busy, shared CPU

The GGUF is converted once into ``--cache-dir`` (default ``$PREFLAB_MODEL_CACHE`` or ``var/models``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from sampling.backends import GenerationRequest, GenerationResult
from sampling.backends.transformers_backend import TransformersBackend
from sampling.embedded import MODEL_CACHE_ENV, ensure_embedded_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    "Give me three tips for sleeping better.",
    "Explain why the sky is blue to a ten-year-old.",
    "Write a short poem about autumn rain.",
    "What are the pros and cons of working from home?",
    "How do I make a simple tomato sauce?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "What is the difference between weather and climate?",
    "Suggest a name for a small bakery and explain it.",
    "How can I start learning to play the guitar?",
    "Write a polite email declining a meeting invitation.",
    "Why do cats purr?",
    "List some healthy snacks for a long hike.",
    "Explain what a neural network is in simple terms.",
    "What should I pack for a weekend trip to the mountains?",
    "Give me a fun fact about octopuses.",
    "How do I keep houseplants alive while on holiday?",
]


def build_requests(count: int, max_new_tokens: int) -> list[GenerationRequest]:
    """``count`` single-turn requests cycling through PROMPTS, each with its own fixed seed."""
    return [
        GenerationRequest(
            [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            temperature=0.6,
            top_p=0.9,
            max_new_tokens=max_new_tokens,
            seed=1000 + i,
        )
        for i in range(count)
    ]


def timed(run: Callable[[], list[GenerationResult]]) -> tuple[list[GenerationResult], float]:
    """Run ``run()`` and return its results with the wall time, synchronising CUDA first and after."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    results = run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return results, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16, help="number of requests (default 16)")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="per response (default 48)")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (default 8)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get(MODEL_CACHE_ENV) or ROOT / "var" / "models"),
        help="where the converted checkpoint lives",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    checkpoint = ensure_embedded_checkpoint(args.cache_dir)
    sequential = TransformersBackend(checkpoint, device=args.device, max_batch_size=1)
    batched = TransformersBackend(checkpoint, device=args.device, max_batch_size=args.batch_size)
    loaded = sequential.load()  # shared with `batched` through the process-wide model cache
    print(f"checkpoint {checkpoint} ready in {time.perf_counter() - started:.1f} s")
    # Warm-up: first calls pay for lazy initialisation (kernels, allocator, tokenizer caches).
    batched.generate_batch(build_requests(min(2, args.prompts), 8))

    requests = build_requests(args.prompts, args.max_new_tokens)
    one_by_one, sequential_s = timed(lambda: [sequential.generate(r) for r in requests])
    in_batches, batched_s = timed(lambda: batched.generate_batch(requests))

    device = loaded.device
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(
        f"model SmolLM2-135M-Instruct, device {device}{gpu}, dtype {loaded.model.dtype}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}"
    )
    print(
        f"{args.prompts} prompts, max_new_tokens {args.max_new_tokens}, temperature 0.6, top_p 0.9, "
        f"batch size {args.batch_size}\n"
    )
    rows = [("one at a time", one_by_one, sequential_s), (f"batched ({args.batch_size})", in_batches, batched_s)]
    header = f"{'mode':<16}{'seconds':>10}{'responses/s':>14}{'tokens':>9}{'tokens/s':>11}"
    print(header)
    print("-" * len(header))
    rates = []
    for name, results, seconds in rows:
        tokens = sum(r.completion_tokens or 0 for r in results)
        rates.append((len(results) / seconds, tokens / seconds))
        print(f"{name:<16}{seconds:>10.2f}{len(results) / seconds:>14.2f}{tokens:>9}{tokens / seconds:>11.1f}")
    print("-" * len(header))
    (one_rps, one_tps), (batch_rps, batch_tps) = rates
    print(f"{'batched / one':<16}{'':>10}{batch_rps / one_rps:>13.2f}x{'':>9}{batch_tps / one_tps:>10.2f}x")
    same = sum(a.text == b.text for a, b in zip(one_by_one, in_batches, strict=True))
    print(f"\nidentical responses in both modes: {same}/{len(requests)}")


if __name__ == "__main__":
    main()
