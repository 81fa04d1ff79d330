"""Sampling speed: how long an annotator waits from submitting a prompt to seeing the pair in the
embedded default, and the local backend's throughput batched against one request at a time.

Part 1 goes through the whole HTTP path of the embedded default (no broker): a throwaway SQLite
database, the demo's two SmolLM2 variants (160 new tokens at most, temperatures {0.6, 0.8, 1.0}),
Django's test client posting to /api/generation-jobs/ and polling the job every 50 ms, exactly as the
rating page does, while a real Celery worker (threads of this process, the embedded file broker)
samples. The first prompt pays for importing
torch and loading the model (the page avoids that by warming up when it opens: see `--warm`).
Part 2 reuses benchmarks/sampling_backends.py: the same requests one per `generate` call, then in
batches, giving responses/s, tokens/s and the ratio.

    .venv/bin/python benchmarks/sampling.py
    .venv/bin/python benchmarks/sampling.py --pairs 8 --prompts 16 --max-new-tokens 48 --batch-size 8
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

PROMPTS = [
    "What are three good habits for learning a new language?",
    "Explain why the sky is blue to a ten-year-old.",
    "Write a short, polite email declining a meeting.",
    "How do I keep basil alive on a windowsill?",
    "What is the difference between weather and climate?",
    "Suggest a name for a small bakery and explain it.",
    "Give me a simple recipe for tomato soup.",
    "Why do cats purr?",
]


def setup_django(database: Path) -> None:
    """The embedded default on a throwaway SQLite file: no REDIS_URL, so tasks run in this process."""
    os.environ["DATABASE_URL"] = f"sqlite:///{database}"
    os.environ.pop("REDIS_URL", None)
    os.environ["PREFLAB_VAR_DIR"] = str(database.parent)  # the embedded file broker, in the same folder
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # A local run (plain HTTP, a secret key kept under var/), not production (config/settings/security.py).
    os.environ.setdefault("PREFLAB_DEMO", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("PREFLAB_LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def wait_for_pair(client, job_id: int, poll: float) -> tuple[dict, float]:
    started = time.perf_counter()
    while True:
        job = client.get(f"/api/generation-jobs/{job_id}/").json()
        if job["status"] == "failed":
            raise SystemExit(f"job {job_id} failed: {job['message']}")
        if job["assignment"]:
            return job, time.perf_counter() - started
        time.sleep(poll)


def prompt_to_pair(pairs: int, poll: float, warm: bool) -> None:
    from celery.contrib.testing.worker import start_worker
    from django.test import Client

    from accounts.models import Role, User, Vendor
    from annotation.models import Response
    from config.celery import app
    from sampling.demo import load_sampling_demo

    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            batch = load_sampling_demo(researcher=None, guidelines="")["batch"]  # converts the GGUF if needed
        finally:
            sys.stdout = stdout
    annotator = User.objects.create(
        username="bench-annotator", role=Role.ANNOTATOR, vendor=Vendor.objects.create(name="Bench")
    )
    client = Client()
    client.force_login(annotator)
    # A real worker (threads of this process) on the embedded file broker, as `make demo` runs one.
    worker = start_worker(app, queues=["default", "sampling"], pool="threads", concurrency=2, perform_ping_check=False)
    worker.__enter__()
    if warm:
        client.get(f"/api/generation-jobs/current/?batch={batch.pk}")  # what the page does when it opens
        time.sleep(8)  # an annotator writing a prompt meanwhile

    waits, generation, tokens = [], [], []
    last_assignment = None
    for index in range(pairs):
        body = {"batch": batch.pk, "prompt": PROMPTS[index % len(PROMPTS)]}
        if index == pairs - 1 and last_assignment:  # the last one continues the dialogue: a second turn
            body = {"batch": batch.pk, "prompt": "Can you say that more simply?", "continues": last_assignment}
        started = time.perf_counter()
        answer = client.post("/api/generation-jobs/", body, content_type="application/json")
        assert answer.status_code == 202, answer.json()
        job, _ = wait_for_pair(client, answer.json()["id"], poll)
        waits.append(time.perf_counter() - started)
        pair = job["assignment"]
        sampled = Response.objects.filter(pk__in=[pair["left"]["id"], pair["right"]["id"]])
        generation.append(max(r.generation["seconds"] for r in sampled))
        tokens += [r.generation["completion_tokens"] for r in sampled]
        rated = client.post(
            "/api/ratings/",
            {
                "assignment": pair["assignment"],
                "chosen_response": pair["left"]["id"],
                "strength": "better",
                "idempotency_key": f"bench-{index}",
            },
            content_type="application/json",
        )
        assert rated.status_code == 201, rated.json()
        last_assignment = pair["assignment"]
        turn = "2nd turn" if "continues" in body else "new prompt"
        pair_tokens = sum(r.generation["completion_tokens"] for r in sampled)
        print(
            f"  pair {index + 1} ({turn}): {waits[-1]:6.2f} s from submit to pair shown, "
            f"{generation[-1]:5.2f} s of it generating, {pair_tokens} tokens"
        )
    worker.__exit__(None, None, None)
    warm_waits = waits[1:] if not warm else waits
    overhead = [w - g for w, g in zip(waits, generation, strict=True)]
    print(
        f"\nprompt submitted -> pair shown: first {waits[0]:.2f} s"
        f"{' (includes importing torch and loading the model)' if not warm else ''}; "
        f"then median {statistics.median(warm_waits):.2f} s (min {min(warm_waits):.2f}, max {max(warm_waits):.2f})"
    )
    print(
        f"time outside generation (HTTP, queueing, database, polling at {poll * 1000:.0f} ms): "
        f"median {statistics.median(overhead):.2f} s; mean response length {statistics.mean(tokens):.0f} tokens"
    )


def backend_throughput(prompts: int, max_new_tokens: int, batch_size: int) -> None:
    import sampling_backends as bench  # benchmarks/sampling_backends.py

    from sampling.backends.transformers_backend import TransformersBackend
    from sampling.variant_backends import EMBEDDED_CHECKPOINT, resolve_checkpoint

    checkpoint = resolve_checkpoint(EMBEDDED_CHECKPOINT)
    sequential = TransformersBackend(checkpoint, device="auto", max_batch_size=1)
    batched = TransformersBackend(checkpoint, device="auto", max_batch_size=batch_size)
    requests = bench.build_requests(prompts, max_new_tokens)
    one_by_one, sequential_s = bench.timed(lambda: [sequential.generate(r) for r in requests])
    in_batches, batched_s = bench.timed(lambda: batched.generate_batch(requests))
    print(f"{prompts} prompts, max_new_tokens {max_new_tokens}, temperature 0.6, top_p 0.9, batch size {batch_size}\n")
    header = f"{'mode':<16}{'seconds':>10}{'responses/s':>14}{'tokens':>9}{'tokens/s':>11}"
    print(header + "\n" + "-" * len(header))
    rates = []
    for name, results, seconds in (
        ("one at a time", one_by_one, sequential_s),
        (f"batched ({batch_size})", in_batches, batched_s),
    ):
        produced = sum(r.completion_tokens or 0 for r in results)
        rates.append((len(results) / seconds, produced / seconds))
        print(f"{name:<16}{seconds:>10.2f}{len(results) / seconds:>14.2f}{produced:>9}{produced / seconds:>11.1f}")
    print("-" * len(header))
    (one_rps, one_tps), (batch_rps, batch_tps) = rates
    print(f"{'batched / one':<16}{'':>10}{batch_rps / one_rps:>13.2f}x{'':>9}{batch_tps / one_tps:>10.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="prompts submitted through the API (default 5)")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between job polls (default 0.05)")
    parser.add_argument("--warm", action="store_true", help="open the page first, as an annotator does")
    parser.add_argument("--prompts", type=int, default=8, help="requests for the throughput part (default 8)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="per response, throughput part (default 32)")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (default 8)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="preflab-bench-") as folder:
        setup_django(Path(folder) / "bench.sqlite3")
        import torch
        from django.conf import settings

        print(
            f"embedded default: SQLite, a worker on the file broker; model cache {settings.PREFLAB_MODEL_CACHE}; "
            f"{os.cpu_count()} CPUs ({platform.machine()}), load average {os.getloadavg()[0]:.1f}, "
            f"torch {torch.__version__}, PREFLAB_TORCH_THREADS={settings.PREFLAB_TORCH_THREADS}, "
            f"CUDA {'yes' if torch.cuda.is_available() else 'no'}\n"
        )
        print("1. Prompt submitted -> pair shown (HTTP API, demo variants, 160 new tokens at most)")
        prompt_to_pair(args.pairs, args.poll, args.warm)
        print(f"\n2. Local backend throughput (torch threads {torch.get_num_threads()})")
        backend_throughput(args.prompts, args.max_new_tokens, args.batch_size)
        print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
