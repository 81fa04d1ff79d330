"""The annotation hot path under load: "next comparison + submit" at 10k and 200k comparisons.

Seeds a PostgreSQL database (created and dropped by this script), serves the app with gunicorn,
drives N concurrent simulated annotators over HTTP for a fixed time at each size, and prints
requests per second, p50/p99 latency of a next+submit cycle, and the p99 ratio between sizes.

    .venv/bin/python benchmarks/annotation_path.py [--sizes 10000 200000] [--annotators 50] [--seconds 20]
"""

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg2
import requests

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("PREFLAB_BENCH_ADMIN_DSN", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = "preflab_bench_annotation"


def recreate_database() -> str:
    conn = psycopg2.connect(ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {DB_NAME}")
    conn.close()
    return ADMIN_DSN.rsplit("/", 1)[0] + "/" + DB_NAME


def django_env(database_url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_DEBUG": "0",
        "REDIS_URL": "",
        "PREFLAB_LOG_LEVEL": "WARNING",
    }


def manage(env: dict, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


SEED_SQL = [
    """INSERT INTO annotation_dialogue (id, batch_id, created_at)
       SELECT %(d0)s + g, %(batch)s, now() FROM generate_series(1, %(n)s) g""",
    """INSERT INTO annotation_turn (dialogue_id, index, role, content)
       SELECT %(d0)s + g, 0, 'user', 'Prompt number ' || g FROM generate_series(1, %(n)s) g""",
    """INSERT INTO annotation_response (id, text, variant_id, temperature, generation, created_at)
       SELECT %(r0)s + g, 'Response text ' || g, CASE WHEN g %% 2 = 1 THEN %(v1)s ELSE %(v2)s END,
              0.7 + (g %% 2) * 0.3, '{}', now()
       FROM generate_series(1, 2 * %(n)s) g""",
    """INSERT INTO annotation_comparison (batch_id, dialogue_id, context_length, response_a_id, response_b_id,
              status, rating_count, slots_taken, label_choice, label_strength, label_safety, label_vote,
              is_gold, gold_choice, gold_strength, created_at)
       SELECT %(batch)s, %(d0)s + g, 1, %(r0)s + 2 * g - 1, %(r0)s + 2 * g, 'open', 0, 0, '', '', '', '',
              false, '', '', now()
       FROM generate_series(1, %(n)s) g""",
    "SELECT setval(pg_get_serial_sequence('annotation_dialogue', 'id'), (SELECT MAX(id) FROM annotation_dialogue))",
    "SELECT setval(pg_get_serial_sequence('annotation_response', 'id'), (SELECT MAX(id) FROM annotation_response))",
    "ANALYZE",
]


def seed(comparisons: int, annotators: int) -> tuple[int, list[str]]:
    """A fresh batch of `comparisons` pairs (set-based SQL) and annotators with API tokens."""
    from django.db import connection
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from accounts.models import User, Vendor
    from annotation.models import Batch
    from sampling.models import ModelVariant

    Batch.objects.all().delete()
    batch = Batch.objects.create(
        name=f"bench-{uuid.uuid4().hex[:6]}", focus="helpfulness", overlap=3, week=timezone.localdate()
    )
    v1 = ModelVariant.objects.get_or_create(name="bench-a", defaults={"backend": "external"})[0]
    v2 = ModelVariant.objects.get_or_create(name="bench-b", defaults={"backend": "external"})[0]
    with connection.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM annotation_dialogue")
        d0 = cur.fetchone()[0]
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM annotation_response")
        r0 = cur.fetchone()[0]
        params = {"d0": d0, "r0": r0, "batch": batch.id, "n": comparisons, "v1": v1.id, "v2": v2.id}
        for statement in SEED_SQL:
            cur.execute(statement, params)
    vendor = Vendor.objects.get_or_create(name="Bench vendor")[0]
    tokens = []
    for _ in range(annotators):
        user = User.objects.create(username=f"bench-{uuid.uuid4().hex[:8]}", role="annotator", vendor=vendor)
        tokens.append(Token.objects.create(user=user).key)
    return batch.id, tokens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drive(base: str, batch_id: int, tokens: list[str], seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def annotator(token: str) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            lease = session.post(f"{base}/api/batches/{batch_id}/next/", timeout=30)
            if lease.status_code == 204:
                return
            if lease.status_code != 200:
                errors.append(f"next {lease.status_code}")
                return
            pair = lease.json()
            rating = session.post(
                f"{base}/api/ratings/",
                json={
                    "assignment": pair["assignment"],
                    "chosen_response": pair["left"]["id"],
                    "strength": "better",
                    "seconds_spent": 10,
                    "idempotency_key": uuid.uuid4().hex,
                },
                timeout=30,
            )
            elapsed = time.perf_counter() - t0
            with lock:
                if rating.status_code == 201:
                    latencies.append(elapsed)
                else:
                    errors.append(f"rating {rating.status_code}")

    threads = [threading.Thread(target=annotator, args=(t,)) for t in tokens]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [float("nan")] * 99
    return {
        "cycles": len(latencies),
        "requests_per_second": 2 * len(latencies) / wall,
        "p50_ms": 1000 * q[49],
        "p99_ms": 1000 * q[98],
        "errors": len(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=max(2, (os.cpu_count() or 2) * 2))
    args = parser.parse_args()

    print(f"machine: {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    database_url = recreate_database()
    env = django_env(database_url)
    manage(env, "migrate", "--noinput")
    os.environ.update({"DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "config.settings"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    manage(env, "collectstatic", "--noinput", "-v0")
    results = {}
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    try:
        for size in args.sizes:
            batch_id, tokens = seed(size, args.annotators)
            port = free_port()
            server = subprocess.Popen(
                [
                    gunicorn,
                    "config.wsgi",
                    "-b",
                    f"127.0.0.1:{port}",
                    "-w",
                    str(args.workers),
                    "-k",
                    "gthread",
                    "--threads",
                    "8",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
            )
            base = f"http://127.0.0.1:{port}"
            try:
                for _ in range(100):
                    try:
                        requests.get(f"{base}/login/", timeout=5)
                        break
                    except requests.RequestException:
                        time.sleep(0.2)
                drive(base, batch_id, tokens[:5], 2.0)  # warm-up: connections, caches
                results[size] = drive(base, batch_id, tokens, args.seconds)
            finally:
                server.terminate()
                server.wait(timeout=30)
            r = results[size]
            print(
                f"{size:>8,} comparisons: {r['requests_per_second']:7.1f} req/s  "
                f"next+submit p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
                f"({r['cycles']} cycles, {r['errors']} errors, {args.annotators} annotators, "
                f"{args.workers} gunicorn workers)"
            )
    finally:
        conn = psycopg2.connect(ADMIN_DSN)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.close()
    if len(args.sizes) >= 2:
        small, large = results[args.sizes[0]], results[args.sizes[-1]]
        print(
            f"p99 ratio {args.sizes[-1]:,} / {args.sizes[0]:,}: {large['p99_ms'] / small['p99_ms']:.2f} (target < 1.3)"
        )
        print(f"p99 target < 50 ms: {'met' if large['p99_ms'] < 50 else 'not met'} at {args.sizes[-1]:,}")


if __name__ == "__main__":
    main()
