"""Outages of the services background work depends on, injected for real: Redis stopped while people
rate, prompt and train; a recompute that fails on a lock; PostgreSQL restarted under rating load.

The test process is the web side (eager off: its tasks go to the test's own Redis); a `celery worker
--beat` subprocess is the worker, so the reconciler runs every second (tests.core.processes.worker_env).
Nothing of Preflab is mocked. The figures the tests wait for are the database's: a report whose
ratings_count equals the ratings stored, a job done, a run succeeded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from agreement.models import AgreementReport, ReportScope
from annotation.models import Batch, Comparison, Rating
from rewardmodel.models import RunStatus, TrainingRun
from sampling.models import GenerationJob, JobStatus
from sampling.variant_backends import EMBEDDED_CHECKPOINT
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory, UserFactory

from .processes import ROOT, PostgresCluster, WebServer, Worker, database_url, wait_until, worker_env

# Each test starts a worker subprocess (10-20 s on the shared machine) besides its fault.
pytestmark = [pytest.mark.services, pytest.mark.slow]

REPORT_TIMEOUT = 120  # seconds for a report to catch up once the fault is gone (reconciler ticks: 1 s)


@pytest.fixture
def workers(transactional_db, tmp_path):
    """Start Worker subprocesses; each is stopped before the database and Redis fixtures end."""
    started: list[Worker] = []

    def start(env: dict[str, str], **options) -> Worker:
        worker = Worker(env, tmp_path / "workers", **options).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def worker_ready(worker: Worker, timeout: float = 90) -> None:
    """Wait until the worker answers a ping through the broker (it has connected and consumes)."""
    from config.celery import app

    def answers() -> bool:
        if worker.process is None or worker.process.poll() is not None:
            raise AssertionError(f"the worker stopped:\n{worker.output()}")
        try:
            return bool(app.control.ping(timeout=1.0))
        except Exception:
            return False

    wait_until(answers, timeout, "the worker did not answer a ping")


def converge(predicate, timeout: float, what: str, *processes) -> float:
    """wait_until, failing with the logs of the processes involved; the seconds it took (printed with -s)."""
    started = time.monotonic()
    try:
        wait_until(predicate, timeout, what, interval=0.5)
    except AssertionError as exc:
        logs = "\n".join(f"--- {type(p).__name__} log ---\n{p.output()}" for p in processes)
        raise AssertionError(f"{exc}\n{logs}") from None
    took = time.monotonic() - started
    print(f"waited {took:.1f} s, else: {what}")
    return took


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def rate_next(client: APIClient, batch: Batch) -> list[int]:
    """Ask for the next pair and rate it: the two status codes, or the one of `next` when it gave none."""
    lease = client.post(f"/api/batches/{batch.id}/next/")
    if lease.status_code != 200:
        return [lease.status_code]
    payload = lease.json()
    rated = client.post(
        "/api/ratings/",
        {
            "assignment": payload["assignment"],
            "chosen_response": payload["left"]["id"],
            "strength": "better",
            "idempotency_key": uuid.uuid4().hex,
        },
        format="json",
    )
    return [lease.status_code, rated.status_code]


def rate_everything(batch: Batch, clients: list[APIClient], max_pairs: int = 20) -> list[int]:
    """Each annotator rates pairs until the batch has none left for them: the status codes of every
    request, in order. Prints the slowest next + rating (-s)."""
    codes, slowest = [], 0.0
    for client in clients:
        for _ in range(max_pairs):
            started = time.monotonic()
            answered = rate_next(client, batch)
            slowest = max(slowest, time.monotonic() - started)
            codes += answered
            if answered[0] != 200:
                break
    print(f"{len(codes)} requests, the slowest next + rating took {slowest:.2f} s")
    return codes


def report_count(batch_id: int) -> int | None:
    return (
        AgreementReport.objects.filter(scope=ReportScope.BATCH, batch_id=batch_id)
        .values_list("ratings_count", flat=True)
        .first()
    )


def test_ratings_given_while_redis_is_down_are_stored_and_the_report_catches_up(postgres, own_redis, workers):
    batch = BatchFactory(overlap=2)
    for _ in range(3):
        ComparisonFactory(batch=batch)
    clients = [token_client(AnnotatorFactory()) for _ in range(2)]
    worker = workers(worker_env(own_redis.url))
    worker_ready(worker)
    assert rate_next(clients[0], batch) == [200, 201]
    converge(lambda: report_count(batch.id) == 1, REPORT_TIMEOUT, "the first rating was not reported", worker)

    own_redis.stop()
    codes = rate_everything(batch, clients)

    assert all(200 <= code < 300 for code in codes), codes
    assert codes.count(201) + 1 == Rating.objects.filter(comparison__batch=batch).count() == 6
    assert not Comparison.objects.filter(batch=batch).exclude(status="complete").exists()
    # Asked for (the request flag is set) but refused: nothing could reach the worker.
    assert Batch.objects.get(pk=batch.pk).agreement_requested_at is not None
    assert report_count(batch.id) == 1  # nothing could reach the worker

    own_redis.start()  # the same port, as a restarted Redis; no rating or request follows
    converge(lambda: report_count(batch.id) == 6, REPORT_TIMEOUT, "the report did not catch up", worker)


def test_a_recompute_that_fails_on_a_lock_is_asked_again_by_the_reconciler(postgres, own_redis, workers):
    batch = BatchFactory(overlap=2)
    for _ in range(2):
        ComparisonFactory(batch=batch)
    clients = [token_client(AnnotatorFactory()) for _ in range(2)]
    # The worker gives up on any lock after a second, as a production database with lock_timeout does.
    worker = workers(worker_env(own_redis.url, DATABASE_URL=f"{database_url()}?options=-c%20lock_timeout%3D1000"))
    worker_ready(worker)

    import psycopg2

    db = connection.settings_dict
    locker = psycopg2.connect(
        dbname=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
    )
    try:
        with locker.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {AgreementReport._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        codes = rate_everything(batch, clients)
        assert all(200 <= code < 300 for code in codes), codes

        def recompute_failed() -> bool:
            return any(
                "annotation.recompute_agreement" in line and "lock timeout" in line
                for line in worker.log.read_text(errors="replace").splitlines()
            )

        converge(recompute_failed, 60, "no recompute failed on the lock", worker)
    finally:
        locker.rollback()  # releases the lock
        locker.close()

    converge(lambda: report_count(batch.id) == 4, REPORT_TIMEOUT, "the report did not converge", worker)


def test_a_prompt_and_a_training_run_asked_for_while_redis_is_down_finish_when_it_is_back(
    postgres, own_redis, workers, embedded_checkpoint, settings
):
    from tests.rewardmodel.runs import TINY, minilm_checkpoint, polite_batch, tiny_dataset
    from tests.sampling.conftest import make_variant, prompt_batch

    models = str(embedded_checkpoint.parent)
    settings.PREFLAB_MODEL_CACHE = models
    embedded = {"backend": "transformers", "checkpoint_path": EMBEDDED_CHECKPOINT, "max_new_tokens": 8}
    variants = [
        make_variant("smollm2-concise", system_prompt="Answer briefly and factually.", top_p=0.9, **embedded),
        make_variant("smollm2-friendly", system_prompt="You are a warm, patient tutor.", top_p=0.95, **embedded),
    ]
    prompts = prompt_batch(variants, max_new_tokens=8)
    annotator, researcher = AnnotatorFactory(), UserFactory()
    dataset = tiny_dataset(researcher, [polite_batch(AnnotatorFactory.create_batch(3), 16)])
    worker = workers(worker_env(own_redis.url, PREFLAB_MODEL_CACHE=models, TOKENIZERS_PARALLELISM="false"))
    worker_ready(worker)

    own_redis.stop()
    asked = time.monotonic()
    run = token_client(researcher).post(
        "/api/training-runs/",
        {"dataset": dataset.pk, "base_checkpoint": minilm_checkpoint().pk, "hyperparameters": TINY},
        format="json",
    )
    prompt = token_client(annotator).post(
        "/api/generation-jobs/", {"batch": prompts.id, "prompt": "Name a colour."}, format="json"
    )
    print(f"the two requests made while Redis was down took {time.monotonic() - asked:.1f} s")

    assert run.status_code == 201, run.json()
    assert prompt.status_code == 202, prompt.json()
    training = TrainingRun.objects.get(pk=run.json()["id"])
    job = GenerationJob.objects.get(pk=prompt.json()["id"])
    assert (training.status, job.status) == (RunStatus.QUEUED, JobStatus.QUEUED)
    assert training.dispatch_count == job.dispatch_count == 1  # sent once after commit; the broker refused

    own_redis.start()  # nobody asks again: the reconciler sends both

    def finished() -> bool:
        training.refresh_from_db()
        job.refresh_from_db()
        if training.status == RunStatus.FAILED or job.status == JobStatus.FAILED:
            raise AssertionError(f"run: {training.error!r}; job: {job.error_message!r}\n{worker.output()}")
        return training.status == RunStatus.SUCCEEDED and job.status == JobStatus.DONE

    converge(finished, 420, "the run and the prompt's pair did not finish", worker)
    assert job.comparison is not None and job.comparison.dialogue_id == job.dialogue_id


# --- PostgreSQL restarted under load --------------------------------------------------------------

SEED = """
import json
from django.conf import settings
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
from rest_framework.authtoken.models import Token
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory
batch = BatchFactory(overlap={overlap})
for _ in range({pairs}):
    ComparisonFactory(batch=batch)
tokens = [Token.objects.create(user=AnnotatorFactory()).key for _ in range({annotators})]
print(json.dumps({{"batch": batch.id, "tokens": tokens}}))
"""


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class Annotator(threading.Thread):
    """One person rating over HTTP until the batch has nothing left for them. A request that fails
    (no answer, or a 5xx) is sent again as it was: a rating with the SAME idempotency key."""

    THINK_SECONDS = 0.3
    TRIES = 80
    RETRY_SECONDS = 0.25

    def __init__(self, base_url: str, batch_id: int, token: str, deadline: float, max_pairs: int) -> None:
        super().__init__(daemon=True)
        import requests

        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        self.base_url, self.batch_id, self.deadline, self.max_pairs = base_url, batch_id, deadline, max_pairs
        self.acknowledged: list[tuple[str, int]] = []  # (idempotency key, assignment) answered 2xx
        self.refused: list[str] = []  # final answers that were not 2xx, or no answer at all
        self.retries = 0

    def call(self, path: str, body: dict | None = None):
        import requests

        for _ in range(self.TRIES):
            if time.monotonic() > self.deadline:
                break
            try:
                response = self.session.post(f"{self.base_url}{path}", json=body, timeout=15)
            except requests.RequestException:
                response = None
            if response is not None and response.status_code < 500:
                return response
            self.retries += 1
            time.sleep(self.RETRY_SECONDS)
        self.refused.append(f"{path} {body}: no answer below 500")
        return None

    def run(self) -> None:
        for _ in range(self.max_pairs):
            lease = self.call(f"/api/batches/{self.batch_id}/next/")
            if lease is None or lease.status_code == 204:
                return
            if lease.status_code != 200:
                self.refused.append(f"next: {lease.status_code} {lease.text[:300]}")
                return
            payload = lease.json()
            time.sleep(self.THINK_SECONDS)
            key = uuid.uuid4().hex
            body = {
                "assignment": payload["assignment"],
                "chosen_response": payload["right"]["id"],
                "strength": "slightly_better",
                "idempotency_key": key,
            }
            rated = self.call("/api/ratings/", body)
            if rated is None:
                return
            if rated.status_code in (200, 201):
                self.acknowledged.append((key, payload["assignment"]))
            else:
                self.refused.append(f"rating {key}: {rated.status_code} {rated.text[:300]}")


@pytest.fixture
def private_postgres():
    """A PostgreSQL cluster of the test's own; requested before `workers`, so it outlives them."""
    cluster = PostgresCluster()
    try:
        yield cluster.start()
    finally:
        cluster.remove()


def query(cluster: PostgresCluster, sql: str, *params) -> list[tuple]:
    """One query on a connection of its own (the cluster may have restarted since the last one)."""
    import psycopg2

    db = psycopg2.connect(host="127.0.0.1", port=cluster.port, user="postgres", dbname=cluster.database)
    try:
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        db.close()


def test_postgresql_restarted_under_rating_load_loses_and_doubles_nothing(
    postgres, own_redis, private_postgres, workers, tmp_path
):
    pairs, overlap, annotators = 12, 2, 3
    cluster = private_postgres
    env = worker_env(own_redis.url, DATABASE_URL=cluster.url, DJANGO_DEBUG="0")
    manage(env, "migrate", "--no-input")
    seed = SEED.format(overlap=overlap, pairs=pairs, annotators=annotators)
    seeded = json.loads(manage(env, "shell", "-c", seed).strip().splitlines()[-1])
    batch_id = seeded["batch"]
    worker = workers(env)
    web = WebServer(env, tmp_path / "web").start()
    try:
        worker_ready(worker)
        deadline = time.monotonic() + 180
        people = [Annotator(web.url, batch_id, token, deadline, max_pairs=pairs + 2) for token in seeded["tokens"]]
        for person in people:
            person.start()

        def acknowledged() -> int:
            return sum(len(person.acknowledged) for person in people)

        # Restart once a third of the ratings are in, while the others are being given.
        wait_until(lambda: acknowledged() >= pairs * overlap // 3, 60, "the annotators did not get going")
        acknowledged_before = acknowledged()
        cluster.restart()
        for person in people:
            person.join(timeout=max(1.0, deadline - time.monotonic()))
        assert not any(person.is_alive() for person in people), "an annotator was still rating at the deadline"
    finally:
        web.stop()

    refused = [line for person in people for line in person.refused]
    keys = [key for person in people for key, _ in person.acknowledged]
    print(
        f"{len(keys)} ratings acknowledged ({acknowledged_before} before the restart), "
        f"{sum(person.retries for person in people)} requests sent again"
    )
    assert not refused, f"{refused}\n--- web server ---\n{web.output()}"
    stored = dict(query(cluster, "SELECT idempotency_key, count(*) FROM annotation_rating GROUP BY idempotency_key"))
    assert {key: stored.get(key) for key in keys} == dict.fromkeys(keys, 1)  # each acknowledged key stored once
    assert len(keys) == sum(stored.values()) == pairs * overlap  # and nothing stored that was not acknowledged
    doubled = "SELECT assignment_id FROM annotation_rating GROUP BY assignment_id HAVING count(*) > 1"
    assert query(cluster, doubled) == []
    over_overlap = (
        "SELECT c.id FROM annotation_comparison c JOIN annotation_batch b ON b.id = c.batch_id "
        "WHERE c.batch_id = %s AND (c.rating_count > b.overlap OR c.slots_taken > b.overlap "
        "OR (SELECT count(*) FROM annotation_rating r WHERE r.comparison_id = c.id) > b.overlap)"
    )
    assert query(cluster, over_overlap, batch_id) == []

    def report_caught_up() -> bool:
        report = "SELECT ratings_count FROM annotation_agreementreport WHERE batch_id = %s AND scope = %s"
        return query(cluster, report, batch_id, ReportScope.BATCH.value) == [(pairs * overlap,)]

    converge(report_caught_up, REPORT_TIMEOUT, "the report did not converge", worker, cluster)
