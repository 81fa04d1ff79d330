"""The rating request with realistic history: does a rating that completes a comparison cost more?

A rating that makes a comparison complete also asks for the batch's agreement report to be
recomputed (``agreement.services.agreement_recompute_request`` after commit: one
conditional UPDATE of the batch row, and a broker send when no request is pending). The goal: that
request within 1.2x of an ordinary rating, in both deployments:

* **embedded**: SQLite and the kombu filesystem broker (no DATABASE_URL, no REDIS_URL), everything
  under a temporary PREFLAB_VAR_DIR;
* **production**: PostgreSQL (a database this script creates on 127.0.0.1:5432 and drops) and Redis
  (a spare database number on 127.0.0.1:6379: it must be empty, and is flushed after).

For each mode it migrates a fresh database, seeds one batch of ``--comparisons`` pairs with overlap 3
and history (10% complete with an agreement report, 10% with 2 ratings, 70% with 1, 10% unrated,
rated by 6 history annotators; each load client has its own annotator and token), then

1. **probe** (in-process, Django's test client, one request at a time): ordinary rating requests,
   completing ones that send the recompute request and completing ones while a request is pending,
   with the SQL queries of each (``CaptureQueriesContext``), on the seeded batch and on a second
   batch ``--probe-large`` pairs big (same queries: the request's work does not grow with the batch),
   and the time of a bare broker send;
2. **load** (over HTTP, loopback only): gunicorn serves the app and a real Celery worker with beat
   (``celery -A config worker --beat -Q default,sampling,training``) runs the recomputes; ``--clients``
   annotator threads loop "next pair" + "rate it" (with a random think time) for at most
   ``--cycles`` cycles or ``--seconds`` seconds. Afterwards the database says which ratings completed
   their comparison (the newest rating of a now complete comparison). "completing_alone" leaves out
   completing ratings sent while another rating of the same pair was in flight (they may wait for
   its row lock: two clients often lease the last two slots of a pair one after the other).

It prints p50/p99 of the rating request for ordinary and completing ratings, their ratio, and whether
the goal is met. Nothing is asserted: benchmarks never fail on time. Diagnostics: ``--profile`` times
rating_submit's parts inside gunicorn (BEGIN, statements, COMMIT, the after-commit request and its
broker send) through a gunicorn config hook, no app change; ``--without-worker`` and
``--worker-nice N`` separate the request's own work from the recompute it starts.

    .venv/bin/python benchmarks/annotation_path.py [--quick] [--modes embedded production]
        [--comparisons 600] [--clients 4] [--cycles 80] [--seconds 50] [--think-ms 30]
        [--probe-samples 15] [--probe-large 6000] [--redis-db 9] [--profile] [--logs DIR]

``--quick`` (what ``make bench`` runs): 40 cycles per client, 25 s, 8 probe samples.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("PREFLAB_BENCH_ADMIN_DSN", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = "preflab_bench_annotation"
REDIS_BASE = os.environ.get("PREFLAB_BENCH_REDIS", "redis://127.0.0.1:6379")
GOAL_RATIO = 1.2
HISTORY_ANNOTATORS = 6
# Shares of the seeded batch by ratings already given (overlap 3): most pairs are partly rated.
HISTORY_MIX = ((3, 0.10), (2, 0.10), (1, 0.70), (0, 0.10))
PROBE_QUEUE = "bench-probe-unconsumed"  # no worker reads it: times a send without running anything


# ------------------------------------------------------------------------------------------------
# Inside a Django process of one mode (the script runs itself with --role ...).


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # A local run (plain HTTP, a secret key kept under var/), not production (config/settings/security.py).
    os.environ.setdefault("PREFLAB_DEMO", "1")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed_batch(*, name: str, comparisons: int, rng: random.Random, annotators: list) -> int:
    """One batch with overlap 3 and history: assignments and ratings by `annotators` (set-wise inserts
    through the ORM, so it runs on SQLite and PostgreSQL alike), majority labels on complete pairs."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from annotation.models import (
        Assignment,
        AssignmentStatus,
        Batch,
        Comparison,
        ComparisonStatus,
        Dialogue,
        Rating,
        Response,
        Strength,
        Turn,
    )
    from annotation.voting import Ballot, majority_label
    from sampling.models import Backend, ModelVariant

    now = timezone.now()
    v1 = ModelVariant.objects.get_or_create(name="bench-a", defaults={"backend": Backend.EXTERNAL})[0]
    v2 = ModelVariant.objects.get_or_create(name="bench-b", defaults={"backend": Backend.EXTERNAL})[0]
    counts = []
    for rated, share in HISTORY_MIX:
        counts += [rated] * round(share * comparisons)
    counts = (counts + [1] * comparisons)[:comparisons]
    rng.shuffle(counts)
    with transaction.atomic():
        batch = Batch.objects.create(name=name, overlap=3, week=timezone.localdate(), lease_minutes=30)
        dialogues = Dialogue.objects.bulk_create([Dialogue(batch=batch) for _ in range(comparisons)])
        Turn.objects.bulk_create(
            Turn(dialogue=d, index=0, role="user", content=f"Prompt {i}: explain item {i} in two sentences.")
            for i, d in enumerate(dialogues)
        )
        responses = Response.objects.bulk_create(
            Response(text=f"Response {i} " + "lorem ipsum " * 40, variant=(v1, v2)[i % 2], temperature=0.7)
            for i in range(2 * comparisons)
        )
        pairs = []
        for i, (dialogue, rated) in enumerate(zip(dialogues, counts, strict=True)):
            pairs.append(
                Comparison(
                    batch=batch,
                    dialogue=dialogue,
                    context_length=1,
                    response_a=responses[2 * i],
                    response_b=responses[2 * i + 1],
                    rating_count=rated,
                    slots_taken=rated,
                )
            )
        pairs = Comparison.objects.bulk_create(pairs)
        assignments, ratings = [], []
        for comparison, rated in zip(pairs, counts, strict=True):
            better = rng.choice("ab")
            ballots = []
            for annotator in rng.sample(annotators, rated):
                swapped = rng.random() < 0.5
                leased = now - timedelta(minutes=rng.uniform(30, 3 * 24 * 60))
                assignment = Assignment(
                    comparison=comparison,
                    annotator=annotator,
                    swapped=swapped,
                    status=AssignmentStatus.SUBMITTED,
                    leased_at=leased,
                    expires_at=leased + timedelta(minutes=30),
                )
                chosen = better if rng.random() < 0.8 else "ab".replace(better, "")
                strength = rng.choice(Strength.values)
                assignments.append(assignment)
                ratings.append(
                    Rating(
                        assignment=assignment,
                        comparison=comparison,
                        annotator=annotator,
                        chosen=chosen,
                        strength=strength,
                        seconds_spent=rng.uniform(10, 120),
                        shown_left="b" if swapped else "a",
                        idempotency_key=uuid.uuid4().hex,
                    )
                )
                ballots.append(Ballot(chosen=chosen, strength=strength))
            if rated >= 3:
                label = majority_label(ballots)
                comparison.status = ComparisonStatus.COMPLETE
                comparison.label_choice, comparison.label_strength = label.choice, label.strength
                comparison.label_vote, comparison.labelled_at = label.vote, now
        Comparison.objects.bulk_update(
            [c for c, rated in zip(pairs, counts, strict=True) if rated >= 3],
            ["status", "label_choice", "label_strength", "label_vote", "labelled_at"],
            batch_size=500,
        )
        Assignment.objects.bulk_create(assignments, batch_size=500)
        for rating in ratings:
            rating.assignment_id = rating.assignment.pk
        Rating.objects.bulk_create(ratings, batch_size=500)
    return batch.pk


def role_seed(args: argparse.Namespace) -> dict:
    _django()
    from rest_framework.authtoken.models import Token

    from accounts.models import User, Vendor
    from agreement.services import agreement_recompute

    rng = random.Random(args.rng_seed)
    started = time.perf_counter()
    vendors = [Vendor.objects.create(name=f"Bench vendor {v}") for v in "AB"]

    def annotator(name: str, vendor) -> User:
        user = User.objects.create(username=name, role="annotator", vendor=vendor)
        Token.objects.create(user=user)
        return user

    history = [annotator(f"bench-history-{i}", vendors[i % 2]) for i in range(HISTORY_ANNOTATORS)]
    clients = [annotator(f"bench-client-{i}", vendors[i % 2]) for i in range(args.clients)]
    batch_id = seed_batch(name="bench-history", comparisons=args.comparisons, rng=rng, annotators=history)
    seeded = time.perf_counter() - started
    report = agreement_recompute(batch_id=batch_id)  # the complete pairs' report, as a worker left it
    return {
        "batch": batch_id,
        "tokens": [Token.objects.get(user=u).key for u in clients],
        "seed_seconds": round(seeded, 2),
        "report_ratings": report.ratings_count,
        "report_seconds": round(report.seconds or 0, 3),
    }


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _probe_batch(batch_id: int, samples: int, rng: random.Random, *, send: bool = True) -> dict:
    """Lease pairs of the batch to a fresh annotator and rate them one at a time through the test
    client: ordinary, completing with the recompute request sent, completing while one is pending."""
    from datetime import timedelta

    from django.db import connection
    from django.db.models import F
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from accounts.models import User, Vendor
    from annotation.models import Assignment, AssignmentStatus, Batch, Comparison, ComparisonStatus

    vendor = Vendor.objects.order_by("id").first()
    user = User.objects.create(username=f"bench-probe-{uuid.uuid4().hex[:6]}", role="annotator", vendor=vendor)
    token = Token.objects.create(user=user).key
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    n = samples + 1  # the first request of each kind warms up and is not counted
    open_pairs = Comparison.objects.filter(batch_id=batch_id, status=ComparisonStatus.OPEN).order_by("id")
    plan = {
        "ordinary": list(open_pairs.filter(rating_count=1, slots_taken=1)[:n]),
        "completing_sent": list(open_pairs.filter(rating_count=2, slots_taken=2)[:n]),
    }
    taken = {c.pk for c in plan["completing_sent"]}
    plan["completing_pending"] = [
        c for c in open_pairs.filter(rating_count=2, slots_taken=2)[: 3 * n] if c.pk not in taken
    ][:n]
    if not send:  # each send makes the worker recompute the batch later: not needed to count queries
        del plan["completing_sent"]
    now = timezone.now()
    leases = {}
    for kind, comparisons in plan.items():
        for comparison in comparisons:
            Comparison.objects.filter(pk=comparison.pk).update(slots_taken=F("slots_taken") + 1)
            leases.setdefault(kind, []).append(
                Assignment.objects.create(
                    comparison=comparison,
                    annotator=user,
                    swapped=rng.random() < 0.5,
                    status=AssignmentStatus.LEASED,
                    leased_at=now,
                    expires_at=now + timedelta(minutes=30),
                )
            )
    results: dict[str, dict] = {k: {"ms": [], "queries": [], "sql": None, "sent": 0} for k in plan}
    messages = 0
    order = [(k, i) for i in range(n) for k in plan if i < len(leases.get(k, []))]
    batches = Batch.objects.filter(pk=batch_id)
    for kind, i in order:
        assignment = leases[kind][i]
        comparison = plan[kind][i]
        if kind == "completing_sent":
            batches.update(agreement_requested_at=None)  # nothing pending: this rating sends the request
        elif kind == "completing_pending":
            batches.update(agreement_requested_at=timezone.now())  # a request is pending: no send
        payload = {
            "assignment": assignment.pk,
            "chosen_response": rng.choice([comparison.response_a_id, comparison.response_b_id]),
            "strength": "better",
            "seconds_spent": 12,
            "idempotency_key": uuid.uuid4().hex,
        }
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            answer = client.post("/api/ratings/", data=json.dumps(payload), content_type="application/json")
            elapsed = time.perf_counter() - started
        if answer.status_code != 201:
            raise RuntimeError(f"probe rating answered {answer.status_code}: {answer.content[:300]!r}")
        comparison.refresh_from_db()
        completed = comparison.status == ComparisonStatus.COMPLETE
        if completed != kind.startswith("completing"):
            raise RuntimeError(f"probe: {kind} rating left the comparison {comparison.status}")
        sent = kind == "completing_sent" and batches.filter(agreement_requested_at__isnull=False).exists()
        messages += int(sent)
        if i == 0:
            continue
        result = results[kind]
        result["ms"].append(1000 * elapsed)
        result["queries"].append(len(queries.captured_queries))
        result["sent"] += int(sent)
        if result["sql"] is None:
            result["sql"] = [q["sql"][:160] for q in queries.captured_queries]
    batches.update(agreement_requested_at=None)
    figures: dict = {
        kind: {
            "n": len(r["ms"]),
            "p50_ms": _percentile(r["ms"], 50),
            "max_ms": max(r["ms"], default=float("nan")),
            "queries": sorted(set(r["queries"])),
            "sent": r["sent"],
            "sql": r["sql"],
        }
        for kind, r in results.items()
    }
    figures["messages"] = messages
    return figures


def role_probe(args: argparse.Namespace) -> dict:
    _django()
    from accounts.models import User
    from core import jobs

    rng = random.Random(args.rng_seed + 1)
    out: dict = {"seeded": _probe_batch(args.batch, args.probe_samples, rng)}
    if args.probe_large:
        started = time.perf_counter()
        history = list(User.objects.filter(username__startswith="bench-history-"))
        large = seed_batch(name="bench-large", comparisons=args.probe_large, rng=rng, annotators=history)
        out["large_seed_seconds"] = round(time.perf_counter() - started, 2)
        out["large"] = _probe_batch(large, 3, rng, send=False)
        # Closed, so the load's clients never take its pairs.
        from annotation.models import Batch

        Batch.objects.filter(pk=large).update(is_open=False)
    # A bare send of the recompute task to a queue nobody reads: the broker's share of the request.
    sends = []
    for _ in range(21):
        started = time.perf_counter()
        ok = jobs.send_task("annotation.recompute_agreement", [args.batch], queue=PROBE_QUEUE)
        sends.append(1000 * (time.perf_counter() - started))
        if not ok:
            raise RuntimeError("the broker did not take the probe's message")
    out["send"] = {"first_ms": sends[0], "p50_ms": _percentile(sends[1:], 50), "max_ms": max(sends[1:])}
    return out


def role_classify(args: argparse.Namespace) -> dict:
    """Which of the load's ratings completed their comparison: the newest rating of a complete pair."""
    _django()
    from django.db.models import Max

    from annotation.models import ComparisonStatus, Rating

    ids = json.loads(Path(args.ratings).read_text())
    comparisons = set(Rating.objects.filter(pk__in=ids).values_list("comparison_id", flat=True))
    last = (
        Rating.objects.filter(comparison_id__in=comparisons, comparison__status=ComparisonStatus.COMPLETE)
        .values("comparison_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    completing = set(last) & set(ids)
    return {"completing": sorted(completing)}


# ------------------------------------------------------------------------------------------------
# The driver: one mode at a time, everything on 127.0.0.1.


@dataclass
class Mode:
    name: str
    env: dict
    var_dir: Path
    label: str
    cleanup: list = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_role(mode: Mode, role: str, *extra: str, timeout: float = 300) -> dict:
    out = mode.var_dir / f"{role}.json"
    subprocess.run(
        [sys.executable, __file__, "--role", role, "--out", str(out), *extra],
        cwd=ROOT,
        env=mode.env,
        check=True,
        timeout=timeout,
    )
    return json.loads(out.read_text())


def base_env(var_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DJANGO_DEBUG": "0",
            # A local run (plain HTTP, a secret key kept under var/), with DEBUG off as production runs.
            "PREFLAB_DEMO": "1",
            "PREFLAB_VAR_DIR": str(var_dir),
            "PREFLAB_BEAT_SCHEDULE_FILE": str(var_dir / "celerybeat-schedule"),
            "PREFLAB_LOG_LEVEL": "WARNING",
            "PREFLAB_TASKS_EAGER": "0",
            "PYTHONUNBUFFERED": "1",
            # whitenoise warns in every process that collectstatic has not run; it serves from the finders.
            "PYTHONWARNINGS": "ignore:No directory at",
        }
    )
    return env


def embedded_mode() -> Mode:
    var_dir = Path(tempfile.mkdtemp(prefix="preflab-bench-embedded-"))
    mode = Mode("embedded", base_env(var_dir), var_dir, "SQLite + filesystem broker")
    mode.cleanup.append(lambda: shutil.rmtree(var_dir, ignore_errors=True))
    return mode


def production_mode(redis_db: int) -> Mode | str:
    """PostgreSQL database created here and Redis database `redis_db`; a reason string when either is
    not there (or the Redis database is not empty: it may be someone else's)."""
    try:
        import psycopg2
        import redis
    except ImportError as exc:
        return f"skipped: {exc}"
    redis_url = f"{REDIS_BASE}/{redis_db}"
    try:
        broker = redis.Redis.from_url(redis_url, socket_timeout=3)
        keys = broker.dbsize()
    except Exception as exc:
        return f"skipped: Redis at {redis_url} does not answer ({exc})"
    if keys:
        return f"skipped: Redis database {redis_db} holds {keys} keys (not ours); choose another with --redis-db"
    try:
        conn = psycopg2.connect(ADMIN_DSN, connect_timeout=5)
    except Exception as exc:
        return f"skipped: PostgreSQL at {ADMIN_DSN} does not answer ({exc})"
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {DB_NAME}")
    conn.close()

    def drop() -> None:
        conn = psycopg2.connect(ADMIN_DSN)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.close()

    var_dir = Path(tempfile.mkdtemp(prefix="preflab-bench-production-"))
    env = base_env(var_dir)
    env["DATABASE_URL"] = ADMIN_DSN.rsplit("/", 1)[0] + "/" + DB_NAME
    env["REDIS_URL"] = redis_url
    mode = Mode("production", env, var_dir, f"PostgreSQL + Redis db {redis_db}")
    mode.cleanup += [drop, broker.flushdb, lambda: shutil.rmtree(var_dir, ignore_errors=True)]
    return mode


# With --profile, gunicorn loads this config: after each web worker has loaded the app, it wraps
# rating_submit, the agreement request it runs after commit, and the broker send with timers (no app
# file changes), and writes one line per rating to PREFLAB_BENCH_PROFILE_DIR.
PROFILE_HOOK = """
import json, os, threading, time


def post_worker_init(worker):
    from agreement import services as agreement_services
    from annotation import services
    from core import jobs

    local = threading.local()
    lock = threading.Lock()
    out = open(os.path.join(os.environ["PREFLAB_BENCH_PROFILE_DIR"], f"profile-{os.getpid()}.jsonl"), "a")

    def timed(function, key):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                record = getattr(local, "record", None)
                if record is not None:
                    record[key] = record.get(key, 0.0) + 1000 * (time.perf_counter() - started)
        return wrapper

    from django.db import connection, connections
    from django.db.backends.base.base import BaseDatabaseWrapper

    submit = services.rating_submit

    def statement(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            record = getattr(local, "record", None)
            if record is not None and "request_started" not in record:
                ms = 1000 * (time.perf_counter() - started)
                record["sql_ms"] = record.get("sql_ms", 0.0) + ms
                if ms > record.get("slowest_ms", 0.0):
                    record["slowest_ms"], record["slowest"] = ms, sql.split(" WHERE ")[0][:70]

    def rating_submit(*args, **kwargs):
        local.record = record = {}
        started = time.perf_counter()
        try:
            with connection.execute_wrapper(statement):
                result = submit(*args, **kwargs)
        finally:
            local.record = None
        record["submit_ms"] = 1000 * (time.perf_counter() - started)
        record["rating"] = result.rating.pk
        with lock:
            out.write(json.dumps(record) + "\\n")
            out.flush()
        return result

    def request(function):
        def wrapper(*args, **kwargs):
            record = getattr(local, "record", None)
            if record is not None:
                record["request_started"] = True
            return function(*args, **kwargs)
        return wrapper

    services.rating_submit = rating_submit
    # BEGIN IMMEDIATE (where a rating waits for SQLite's write lock) and COMMIT
    wrapper_class = type(connections["default"])
    if hasattr(wrapper_class, "_start_transaction_under_autocommit"):  # SQLite; PostgreSQL begins implicitly
        wrapper_class._start_transaction_under_autocommit = timed(
            wrapper_class._start_transaction_under_autocommit, "begin_ms"
        )
    BaseDatabaseWrapper.commit = timed(BaseDatabaseWrapper.commit, "commit_ms")
    agreement_services.agreement_recompute_request = timed(
        request(agreement_services.agreement_recompute_request), "request_ms"
    )
    jobs.send_task = timed(jobs.send_task, "send_ms")
"""


def start_services(mode: Mode, port: int, args: argparse.Namespace) -> tuple[list, Path]:
    worker_log = mode.var_dir / "worker.log"
    worker_log.touch()
    worker_env = {**mode.env, "PREFLAB_LOG_LEVEL": "INFO", "PREFLAB_TASK_LOG_LEVEL": "INFO"}
    celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    processes = []
    profile = []
    web_env = dict(mode.env)
    if args.profile:
        (mode.var_dir / "profile").mkdir(exist_ok=True)
        (mode.var_dir / "gunicorn_profile.py").write_text(PROFILE_HOOK)
        profile = ["-c", str(mode.var_dir / "gunicorn_profile.py")]
        web_env["PREFLAB_BENCH_PROFILE_DIR"] = str(mode.var_dir / "profile")
    web = subprocess.Popen(
        [
            *(gunicorn, "config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(args.web_workers), *profile),
            *("-k", "gthread", "--threads", str(args.web_threads), "--log-level", "warning", "--timeout", "60"),
        ],
        cwd=ROOT,
        env=web_env,
    )
    processes.append(web)
    if args.without_worker:
        return processes, worker_log
    nice = ["nice", "-n", str(args.worker_nice)] if args.worker_nice else []
    with open(worker_log, "wb") as log:
        worker = subprocess.Popen(
            [
                *nice,
                *(celery, "-A", "config", "worker", "--beat", "-Q", "default,sampling,training"),
                *("-c", "2", "--prefetch-multiplier", "1", "-l", "info", "--without-mingle", "--without-gossip"),
                *("--hostname", f"bench-{mode.name}@%h", "--schedule", mode.env["PREFLAB_BEAT_SCHEDULE_FILE"]),
            ],
            cwd=ROOT,
            env=worker_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    processes.append(worker)
    return processes, worker_log


def stop_services(processes: list) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def wait_until_ready(base: str, processes: list, worker_log: Path | None, timeout: float = 90) -> None:
    import requests

    deadline = time.monotonic() + timeout
    web_ready, worker_ready = False, worker_log is None
    while time.monotonic() < deadline and not (web_ready and worker_ready):
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[0]} stopped while starting (exit {process.returncode})")
        if not web_ready:
            with contextlib.suppress(requests.RequestException):
                web_ready = requests.get(f"{base}/login/", timeout=5).status_code < 500
        worker_ready = worker_ready or " ready." in worker_log.read_text(errors="replace")
        time.sleep(0.3)
    if not (web_ready and worker_ready):
        raise RuntimeError(f"not ready within {timeout:.0f} s (web {web_ready}, worker {worker_ready})")


def recomputes_done(worker_log: Path) -> int:
    return worker_log.read_text(errors="replace").count("Agreement of batch")


def drive(base: str, batch_id: int, tokens: list[str], cycles: int, seconds: float, think_ms: float, seed: int) -> dict:
    """Each token's thread loops next + rate; every rating's start, end and ids are recorded."""
    import requests

    records: list[dict] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def annotator(index: int, token: str) -> None:
        rng = random.Random(seed * 1000 + index)
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        for _ in range(cycles):
            if time.monotonic() >= stop_at:
                return
            t0 = time.perf_counter()
            lease = session.post(f"{base}/api/batches/{batch_id}/next/", timeout=30)
            t1 = time.perf_counter()
            if lease.status_code == 204:
                return
            if lease.status_code != 200:
                with lock:
                    errors.append(f"next {lease.status_code}")
                return
            pair = lease.json()
            time.sleep(rng.uniform(0, think_ms) / 1000)  # the annotator reads the pair
            body = {
                "assignment": pair["assignment"],
                "chosen_response": rng.choice([pair["left"]["id"], pair["right"]["id"]]),
                "strength": rng.choice(["significantly_better", "better", "slightly_better", "negligibly_better"]),
                "seconds_spent": round(rng.uniform(10, 120), 1),
                "idempotency_key": uuid.uuid4().hex,
            }
            t2 = time.perf_counter()
            rating = session.post(f"{base}/api/ratings/", json=body, timeout=30)
            t3 = time.perf_counter()
            with lock:
                if rating.status_code == 201:
                    answer = rating.json()
                    ids = {"id": answer["id"], "comparison": answer["comparison"]}
                    records.append({**ids, "start": t2, "end": t3, "next": t1 - t0})
                else:
                    errors.append(f"rating {rating.status_code}")

    threads = [threading.Thread(target=annotator, args=(i, t)) for i, t in enumerate(tokens)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"records": records, "errors": errors, "wall": time.perf_counter() - started}


def summarise(records: list[dict], completing: set[int]) -> dict:
    ordinary = [1000 * (r["end"] - r["start"]) for r in records if r["id"] not in completing]
    done = [r for r in records if r["id"] in completing]
    by_comparison: dict[int, list[dict]] = {}
    for r in records:
        by_comparison.setdefault(r["comparison"], []).append(r)

    def overlapped(r: dict) -> bool:
        """Another rating of the same pair was in flight: this one may have waited for its row lock."""
        siblings = by_comparison[r["comparison"]]
        return any(o is not r and o["start"] < r["end"] and r["start"] < o["end"] for o in siblings)

    alone = [1000 * (r["end"] - r["start"]) for r in done if not overlapped(r)]
    completing_ms = [1000 * (r["end"] - r["start"]) for r in done]
    figures = {
        "ordinary": {"n": len(ordinary), "p50": _percentile(ordinary, 50), "p99": _percentile(ordinary, 99)},
        "completing": {
            "n": len(completing_ms),
            "p50": _percentile(completing_ms, 50),
            "p99": _percentile(completing_ms, 99),
        },
        "completing_alone": {"n": len(alone), "p50": _percentile(alone, 50), "p99": _percentile(alone, 99)},
        "next_p50": _percentile([1000 * r["next"] for r in records], 50),
    }
    for q in ("p50", "p99"):
        figures[f"ratio_{q}"] = figures["completing"][q] / figures["ordinary"][q] if ordinary else float("nan")
    return figures


def profile_summary(folder: Path, ids: set[int], completing: set[int]) -> dict:
    """Server-side split of the load's ratings: rating_submit (its transaction and the after-commit
    agreement request), the request (conditional UPDATE of the batch row + send) and the send alone."""
    records = [
        json.loads(line)
        for path in folder.glob("profile-*.jsonl")
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    records = [r for r in records if r["rating"] in ids]
    out = {}
    for kind, rows in (
        ("ordinary", [r for r in records if r["rating"] not in completing]),
        ("completing", [r for r in records if r["rating"] in completing]),
    ):
        sent = [r for r in rows if "send_ms" in r]
        pending = [r for r in rows if "request_ms" in r and "send_ms" not in r]
        out[kind] = {
            "n": len(rows),
            "submit_p50": _percentile([r["submit_ms"] for r in rows], 50),
            "submit_p99": _percentile([r["submit_ms"] for r in rows], 99),
            "in_transaction_p50": _percentile([r["submit_ms"] - r.get("request_ms", 0) for r in rows], 50),
            "sent": len(sent),
            "request_sent_p50": _percentile([r["request_ms"] for r in sent], 50),
            "request_sent_p99": _percentile([r["request_ms"] for r in sent], 99),
            "update_sent_p50": _percentile([r["request_ms"] - r["send_ms"] for r in sent], 50),
            "send_p50": _percentile([r["send_ms"] for r in sent], 50),
            "send_p99": _percentile([r["send_ms"] for r in sent], 99),
            "begin_p50": _percentile([r.get("begin_ms", 0.0) for r in rows], 50),
            "begin_p99": _percentile([r.get("begin_ms", 0.0) for r in rows], 99),
            "sql_p50": _percentile([r.get("sql_ms", 0.0) for r in rows], 50),
            "sql_p99": _percentile([r.get("sql_ms", 0.0) for r in rows], 99),
            "commit_p50": _percentile([r.get("commit_ms", 0.0) for r in rows], 50),
            "commit_p99": _percentile([r.get("commit_ms", 0.0) for r in rows], 99),
            "slowest": collections.Counter(r.get("slowest", "") for r in rows).most_common(2),
            "pending": len(pending),
            "request_pending_p50": _percentile([r["request_ms"] for r in pending], 50),
            "request_pending_p99": _percentile([r["request_ms"] for r in pending], 99),
        }
    return out


def run_mode(mode: Mode, args: argparse.Namespace) -> dict:
    started = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - started - sum(phases.values()), 1)

    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=mode.env,
        check=True,
        timeout=300,
    )
    phase("migrate")
    seeded = run_role(mode, "seed", "--comparisons", str(args.comparisons), "--clients", str(args.clients))
    probe_args = ["--batch", str(seeded["batch"]), "--probe-samples", str(args.probe_samples)]
    phase("seed")
    probe = run_role(mode, "probe", *probe_args, "--probe-large", str(args.probe_large))
    phase("probe")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes, worker_log = start_services(mode, port, args)
    try:
        wait_until_ready(base, processes, None if args.without_worker else worker_log)
        phase("start")
        # The probe's recompute requests run first, so the load starts with an idle worker.
        sent = sum(probe[size].pop("messages") for size in ("seeded", "large") if size in probe)
        deadline, quiet_since, seen = time.monotonic() + 60, time.monotonic(), -1
        while not args.without_worker and time.monotonic() < deadline:
            done = recomputes_done(worker_log)
            if done >= sent or time.monotonic() - quiet_since > 8:
                break
            if done != seen:
                seen, quiet_since = done, time.monotonic()
            time.sleep(0.2)
        phase("probe recomputes")
        drive(base, seeded["batch"], seeded["tokens"], 2, 10, args.think_ms, args.rng_seed)  # warm-up
        before = recomputes_done(worker_log)
        phase("warm-up")
        load = drive(
            base, seeded["batch"], seeded["tokens"], args.cycles, args.seconds, args.think_ms, args.rng_seed + 7
        )
        time.sleep(1.0)
        recomputes = recomputes_done(worker_log) - before
        phase("load")
    finally:
        stop_services(processes)
    phase("stop")
    ids = [r["id"] for r in load["records"]]
    ratings_file = mode.var_dir / "ratings.json"
    ratings_file.write_text(json.dumps(ids))
    completing = set(run_role(mode, "classify", "--ratings", str(ratings_file))["completing"])
    phase("classify")
    figures = summarise(load["records"], completing)
    figures["worker_errors"] = worker_log.read_text(errors="replace").count("Traceback")
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
        shutil.copy(worker_log, Path(args.logs) / f"worker-{mode.name}.log")
    if args.profile:
        figures["profile"] = profile_summary(mode.var_dir / "profile", set(ids), completing)
    figures.update(
        probe=probe,
        seed=seeded,
        errors=load["errors"],
        wall=load["wall"],
        ratings=len(ids),
        recomputes=recomputes,
        mode_seconds=time.monotonic() - started,
        phases=phases,
    )
    return figures


def print_mode(mode: Mode, f: dict, args: argparse.Namespace) -> None:
    def ms(x: float) -> str:
        return f"{x:7.1f} ms"

    seed, probe = f["seed"], f["probe"]
    print(
        f"\n[{mode.name}] {mode.label}: seeded {args.comparisons} comparisons in {seed['seed_seconds']} s, "
        f"agreement report over {seed['report_ratings']} ratings; mode took {f['mode_seconds']:.0f} s"
    )
    print("  seconds: " + ", ".join(f"{k} {v}" for k, v in f["phases"].items()))
    print("  probe, in-process (test client, one request at a time):")
    for size in ("seeded", "large"):
        if size not in probe:
            continue
        where = f"{args.comparisons} pairs" if size == "seeded" else f"{args.probe_large} pairs"
        if size == "large":
            print(f"    (a second batch of {args.probe_large} pairs seeded in {probe['large_seed_seconds']} s)")
        for kind, r in probe[size].items():
            print(
                f"    {where:>11}  {kind:<19} n={r['n']:<3} p50 {ms(r['p50_ms'])}  max {ms(r['max_ms'])}  "
                f"queries {'/'.join(map(str, r['queries']))}"
                + (f"  (sent {r['sent']})" if kind == "completing_sent" else "")
            )
    ordinary_sql = {q[:50] for q in probe["seeded"]["ordinary"]["sql"] or []}
    for q in probe["seeded"].get("completing_sent", {}).get("sql") or []:
        if q[:50] not in ordinary_sql:
            print(f"    query only a completing rating runs: {q[:110]}")
    s = probe["send"]
    print(f"    broker send alone: first {ms(s['first_ms'])}, then p50 {ms(s['p50_ms'])}, max {ms(s['max_ms'])}")
    print(
        f"  load over HTTP: {args.clients} clients, {f['ratings']} ratings in {f['wall']:.1f} s "
        f"({f['ratings'] / f['wall']:.1f} ratings/s), {len(f['errors'])} errors, "
        f"{f['recomputes']} agreement recomputes by the worker ({f['worker_errors']} tracebacks in its log), "
        f"next p50 {ms(f['next_p50'])}"
    )
    for kind in ("ordinary", "completing", "completing_alone"):
        r = f[kind]
        print(f"    {kind:<17} n={r['n']:<4} p50 {ms(r['p50'])}  p99 {ms(r['p99'])}")
    if "profile" in f:
        print("  server side (--profile), ms:")
        for kind, r in f["profile"].items():
            print(
                f"    {kind:<11} n={r['n']:<4} rating_submit p50 {r['submit_p50']:.1f} p99 {r['submit_p99']:.1f}; "
                f"before the agreement request p50 {r['in_transaction_p50']:.1f}"
            )
            print(
                f"      BEGIN p50 {r['begin_p50']:.1f} p99 {r['begin_p99']:.1f}; statements p50 {r['sql_p50']:.1f} "
                f"p99 {r['sql_p99']:.1f}; COMMIT p50 {r['commit_p50']:.1f} p99 {r['commit_p99']:.1f}; "
                f"slowest statement mostly {r['slowest']}"
            )
            if kind == "completing":
                print(
                    f"      agreement request that sent ({r['sent']}): p50 {r['request_sent_p50']:.1f} "
                    f"p99 {r['request_sent_p99']:.1f} = UPDATE p50 {r['update_sent_p50']:.1f} + broker send p50 "
                    f"{r['send_p50']:.1f} (p99 {r['send_p99']:.1f}); while one was pending ({r['pending']}): p50 "
                    f"{r['request_pending_p50']:.1f} p99 {r['request_pending_p99']:.1f}"
                )
    print(
        f"    completing / ordinary: p50 {f['ratio_p50']:.2f}x, p99 {f['ratio_p99']:.2f}x "
        f"(goal <= {GOAL_RATIO}x: {verdict(f)})"
    )


def verdict(f: dict) -> str:
    if f["ratio_p50"] != f["ratio_p50"] or f["ratio_p99"] != f["ratio_p99"]:  # nan: one kind had no ratings
        return "n/a (too few ratings of one kind)"
    return "met" if f["ratio_p50"] <= GOAL_RATIO and f["ratio_p99"] <= GOAL_RATIO else "not met"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", choices=["embedded", "production"], default=["embedded", "production"])
    parser.add_argument("--quick", action="store_true", help="fewer cycles and probe samples (make bench)")
    parser.add_argument("--comparisons", type=int, default=600)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=None, help="most next+rate cycles per client")
    parser.add_argument("--seconds", type=float, default=None, help="most seconds of load per mode")
    parser.add_argument("--think-ms", type=float, default=30.0, help="random pause before each rating, 0..this")
    parser.add_argument("--probe-samples", type=int, default=None)
    parser.add_argument("--probe-large", type=int, default=6000, help="also probe a batch this large (0: skip)")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=4)
    parser.add_argument("--redis-db", type=int, default=9)
    # Diagnostics: is a completing rating slower because of its own work or the recompute it starts?
    parser.add_argument("--without-worker", action="store_true", help="no Celery worker: messages wait in the broker")
    parser.add_argument("--worker-nice", type=int, default=0, help="run the worker under nice -n N")
    parser.add_argument("--profile", action="store_true", help="time rating_submit's parts inside gunicorn")
    parser.add_argument("--logs", help="copy each mode's worker log into this folder")
    parser.add_argument("--rng-seed", type=int, default=20240601)
    # Internal: the script runs itself inside each mode's environment.
    parser.add_argument("--role", choices=["seed", "probe", "classify"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ratings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        result = {"seed": role_seed, "probe": role_probe, "classify": role_classify}[args.role](args)
        Path(args.out).write_text(json.dumps(result))
        return
    args.cycles = args.cycles or (40 if args.quick else 80)
    args.seconds = args.seconds or (25.0 if args.quick else 50.0)
    args.probe_samples = args.probe_samples or (8 if args.quick else 15)

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), platform.processor())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.node()} · {os.cpu_count()} cores ({cpu}) · Python {platform.python_version()} · "
        f"load average {load:.2f} at start"
    )
    print(
        f"workload: {args.clients} clients x at most {args.cycles} cycles / {args.seconds:.0f} s per mode, think time "
        f"0-{args.think_ms:.0f} ms; gunicorn {args.web_workers} gthread workers x {args.web_threads} threads; "
        + ("no celery worker" if args.without_worker else "celery worker --beat, prefork -c 2")
        + (f" under nice -n {args.worker_nice}" if args.worker_nice and not args.without_worker else "")
    )
    summary, failed = [], []
    for name in args.modes:
        mode = embedded_mode() if name == "embedded" else production_mode(args.redis_db)
        if isinstance(mode, str):
            print(f"\n[{name}] {mode}")
            continue
        try:
            figures = run_mode(mode, args)
            print_mode(mode, figures, args)
            summary.append((mode, figures))
        except Exception as exc:  # the other mode still runs; the exit status says something failed
            print(f"\n[{name}] failed: {exc!r}")
            failed.append(name)
        finally:
            for step in mode.cleanup:
                try:
                    step()
                except Exception as exc:
                    print(f"  cleanup of {name}: {exc}")
    if summary:
        print("\nrating request, p50 / p99 (ms), and completing / ordinary:")
        for mode, f in summary:
            o, c = f["ordinary"], f["completing"]
            print(
                f"  {mode.name:<10} ordinary {o['p50']:.1f} / {o['p99']:.1f} (n={o['n']})  completing {c['p50']:.1f} / "
                f"{c['p99']:.1f} (n={c['n']})  ratio {f['ratio_p50']:.2f} / {f['ratio_p99']:.2f}  "
                f"goal {GOAL_RATIO}x {verdict(f)}"
            )
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load_end:.2f} at the end")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
