"""The one spine for background work: the database says what is wanted, the broker is a fast path.

Every kind of background work (a generation job, a dataset build or export, a training run, an
evaluation, an agreement report) is a row with a status. This module owns the mechanics they share:

* **enqueue** after commit: ``enqueue("rewardmodel.training", [run.pk])`` sends the row's task once the
  transaction that wrote the row has committed. A broker that does not answer is logged and the row
  stays queued: the request never fails and nothing is lost.
* **claim** with a conditional UPDATE: a queued row, or a running one whose heartbeat went stale (its
  worker died), becomes running under a new attempt number; a second delivery of a message finds
  nothing to claim and does nothing.
* **heartbeat** from a side thread while the work runs, so dead work can be told from slow work.
* **reconcile**, run periodically by celery beat: re-send rows that are queued but were not picked
  up (with backoff), give running rows whose heartbeat stopped back to the queue (or fail them after
  their last attempt), then run the steps apps register (agreement reports older than their newest
  rating, overdue quiz sections, partial files of failed exports).

Apps register their kinds and steps in ``AppConfig.ready``; this module imports no app, services
import this module, and tasks import services: imports go one way.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, models, transaction
from django.db.models import F, Q
from django.utils import timezone

from .heartbeat import Heartbeat

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobKind:
    """One kind of background work: which rows, which task runs them, and how they are recovered.

    The rows carry ``status``, ``attempts``, ``heartbeat_at``, ``worker``, ``dispatched_at`` and
    ``dispatch_count`` (and ``finished_at``). ``stale_seconds`` and ``max_attempts`` are read from
    settings at each use, so tests and deployments can change them.
    """

    name: str
    rows: Callable[[], models.QuerySet]
    task: str
    queue: str
    stale_seconds: Callable[[], float]
    max_attempts: Callable[[], int | None] = lambda: None
    # Fields written when a row lost its worker after its last attempt (besides status and finished_at).
    give_up: Callable[[Any], dict[str, Any]] = lambda row: {
        "error": f"The worker stopped after attempt {row.attempts} and it was not tried again."
    }
    # Called for a lost row before the usual handling; True when it dealt with the row itself.
    on_lost: Callable[[Any, datetime], bool] | None = None
    ids_per_message: Callable[[], int] = lambda: 1
    heartbeat_seconds: Callable[[], float] = lambda: settings.PREFLAB_JOBS_HEARTBEAT_SECONDS
    queued: str = "queued"
    running: tuple[str, ...] = ("running",)
    failed: str = "failed"

    def send_args(self, ids: list[int]) -> list[Any]:
        return [ids] if self.ids_per_message() > 1 else [ids[0]]

    def chunks(self, ids: Sequence[int]) -> list[list[int]]:
        size = max(1, self.ids_per_message())
        return [list(ids[start : start + size]) for start in range(0, len(ids), size)]

    def stale_before(self, now: datetime) -> datetime:
        return now - timedelta(seconds=self.stale_seconds())


@dataclass
class Registry:
    kinds: dict[str, JobKind] = field(default_factory=dict)
    steps: dict[str, Callable[[datetime], object]] = field(default_factory=dict)


registry = Registry()


def register(kind: JobKind) -> JobKind:
    registry.kinds[kind.name] = kind
    return kind


def register_step(name: str, step: Callable[[datetime], object]) -> None:
    """A reconcile step: compares wanted with actual state for one concern and acts on the difference."""
    registry.steps[name] = step


def kind(name: str) -> JobKind:
    try:
        return registry.kinds[name]
    except KeyError:
        raise LookupError(f"no background job kind {name!r}; kinds: {', '.join(sorted(registry.kinds))}") from None


def this_process() -> str:
    """host:pid, read at each use (a prefork pool imports modules before it forks)."""
    return f"{socket.gethostname()}:{os.getpid()}"


# --- sending --------------------------------------------------------------------------------------


def enqueue(kind_name: str, ids: Iterable[int]) -> None:
    """Send the rows' task once the current transaction commits (at once outside a transaction)."""
    ids = [int(i) for i in ids]
    if not ids:
        return

    def send_after_commit() -> None:  # a named function: robust on_commit logs failures by name
        send(kind_name, ids)

    transaction.on_commit(send_after_commit, robust=True)


def send(kind_name: str, ids: Sequence[int], *, now: datetime | None = None) -> int:
    """Send the rows' task now and note it on the rows. Returns the messages the broker took; a broker
    error is logged, not raised: the rows stay queued and the reconciler sends them again."""
    job_kind = kind(kind_name)
    now = now or timezone.now()
    sent = 0
    for chunk in job_kind.chunks(list(ids)):
        job_kind.rows().filter(pk__in=chunk).update(dispatched_at=now, dispatch_count=F("dispatch_count") + 1)
        if not send_task(job_kind.task, job_kind.send_args(chunk), queue=job_kind.queue):
            break  # the broker is down: the rest stay queued, unsent, for the reconciler
        sent += 1
    return sent


def send_task(name: str, args: list[Any], *, queue: str) -> bool:
    """Send a task by name to its queue; False (logged) when the broker does not answer.

    Unit tests that ask for eager execution (``task_always_eager``) run it here instead.
    """
    from config.celery import app

    if app.conf.task_always_eager:
        app.loader.import_default_modules()  # the apps' tasks modules, as a worker imports them
        app.tasks[name].apply(args=args, throw=app.conf.task_eager_propagates)
        return True
    try:
        app.send_task(name, args=args, queue=queue, retry=False)
    except Exception as exc:
        logger.warning("the broker did not take %s%s (%s); the reconciler will send it again", name, args, exc)
        return False
    return True


# --- claiming and heartbeats ------------------------------------------------------------------------


def claimable(job_kind: JobKind, now: datetime) -> Q:
    """Queued rows, and running rows whose worker stopped sending heartbeats."""
    stale = Q(heartbeat_at__lt=job_kind.stale_before(now)) | Q(heartbeat_at__isnull=True)
    return Q(status=job_kind.queued) | (Q(status__in=job_kind.running) & stale)


def claim_fields(job_kind: JobKind, now: datetime) -> dict[str, Any]:
    return {
        "status": job_kind.running[0],
        "attempts": F("attempts") + 1,
        "heartbeat_at": now,
        "worker": this_process(),
    }


def claim(kind_name: str, pk: int, *, now: datetime | None = None, **fields: Any) -> int | None:
    """Take one row for this delivery: its new attempt number, or None when there is nothing to take
    (done, failed, or held by a live worker). A lost row past its last attempt is failed instead."""
    job_kind = kind(kind_name)
    now = now or timezone.now()
    with transaction.atomic():
        row = job_kind.rows().select_for_update().filter(claimable(job_kind, now), pk=pk).first()
        if row is None:
            return None
        if row.status in job_kind.running and _out_of_attempts(job_kind, row):
            _give_up(job_kind, row, now)
            return None
        job_kind.rows().filter(pk=pk).update(**claim_fields(job_kind, now), **fields)
        return row.attempts + 1


def heartbeat(kind_name: str, ids: Sequence[int]) -> Heartbeat:
    """A context manager that keeps the rows' heartbeat fresh while this process works on them."""
    job_kind = kind(kind_name)
    ids = list(ids)
    worker = this_process()

    def beat() -> None:
        job_kind.rows().filter(pk__in=ids, status__in=job_kind.running, worker=worker).update(
            heartbeat_at=timezone.now()
        )

    # Inside a transaction (an eager unit test) the beat's own connection would wait on the caller's
    # locks; the work's progress writes carry the heartbeat there.
    in_transaction = connections["default"].in_atomic_block
    return Heartbeat(
        beat,
        interval=0 if in_transaction else job_kind.heartbeat_seconds(),
        name=f"preflab-heartbeat-{job_kind.name}",
        what=f"{job_kind.name} {ids}",
    )


def is_lost(job_kind: JobKind, row: Any, now: datetime | None = None) -> bool:
    """A running row whose heartbeat stopped: its worker died."""
    now = now or timezone.now()
    return row.status in job_kind.running and (
        row.heartbeat_at is None or row.heartbeat_at < job_kind.stale_before(now)
    )


def _out_of_attempts(job_kind: JobKind, row: Any) -> bool:
    most = job_kind.max_attempts()
    return most is not None and row.attempts >= most


def _give_up(job_kind: JobKind, row: Any, now: datetime) -> bool:
    return bool(
        job_kind.rows()
        .filter(pk=row.pk, status=row.status, attempts=row.attempts)
        .update(status=job_kind.failed, finished_at=now, **job_kind.give_up(row))
    )


# --- the reconciler -----------------------------------------------------------------------------------


def resend_delay(dispatch_count: int) -> float:
    """How long a queued row waits after its last send before it is sent again: doubling, capped."""
    base = settings.PREFLAB_JOBS_RESEND_SECONDS
    return min(base * 2 ** max(0, dispatch_count - 1), settings.PREFLAB_JOBS_RESEND_MAX_SECONDS)


def resend_unpicked(job_kind: JobKind, now: datetime, limit: int = 500) -> list[int]:
    """Queued rows whose message was lost (a broker outage, a killed in-memory queue) are sent again."""
    first_due = now - timedelta(seconds=settings.PREFLAB_JOBS_RESEND_SECONDS)
    candidates = (
        job_kind.rows()
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=first_due), status=job_kind.queued)
        .order_by("pk")
        .values_list("pk", "dispatched_at", "dispatch_count")[:limit]
    )
    due = [
        pk
        for pk, dispatched_at, count in candidates
        if dispatched_at is None or dispatched_at < now - timedelta(seconds=resend_delay(count))
    ]
    if due:
        send(job_kind.name, due, now=now)
    return due


def recover_lost(job_kind: JobKind, now: datetime, limit: int = 500) -> list[int]:
    """Running rows whose heartbeat stopped go back to the queue (and are sent), or are failed after
    their last attempt. Returns the ids given back to the queue."""
    if not job_kind.running:
        return []
    stale = Q(heartbeat_at__lt=job_kind.stale_before(now)) | Q(heartbeat_at__isnull=True)
    requeued = []
    lost = list(job_kind.rows().filter(stale, status__in=job_kind.running).order_by("pk")[:limit])
    for row in lost:
        if job_kind.on_lost is not None and job_kind.on_lost(row, now):
            continue
        if _out_of_attempts(job_kind, row):
            _give_up(job_kind, row, now)
        elif (
            job_kind.rows()
            .filter(pk=row.pk, status=row.status, attempts=row.attempts)
            .update(status=job_kind.queued, heartbeat_at=None)
        ):
            requeued.append(row.pk)
    if requeued:
        logger.warning("%s %s lost their worker; queued again", job_kind.name, requeued)
        send(job_kind.name, requeued, now=now)
    return requeued


def reconcile(*, now: datetime | None = None) -> dict[str, Any]:
    """One pass of the controller: compare what the rows want with what is running, act on the
    difference. Safe to run at any time and from several places at once (every write is conditional)."""
    now = now or timezone.now()
    started = time.perf_counter()
    summary: dict[str, Any] = {}
    for name, job_kind in sorted(registry.kinds.items()):
        try:
            summary[name] = {"resent": resend_unpicked(job_kind, now), "recovered": recover_lost(job_kind, now)}
        except Exception:
            logger.exception("reconciling %s failed", name)
            summary[name] = {"error": True}
    for name, step in sorted(registry.steps.items()):
        try:
            summary[name] = step(now)
        except Exception:
            logger.exception("reconcile step %s failed", name)
            summary[name] = {"error": True}
    summary["seconds"] = round(time.perf_counter() - started, 3)
    return summary


def job_task(*, name: str, queue: str, long: bool = False, **options: Any):
    """Declare a Celery task with its explicit name and queue. Long tasks acknowledge after the work
    and give the message back when their worker process dies (the status row makes a second
    delivery harmless)."""
    from celery import shared_task

    if long:
        options = {"acks_late": True, "reject_on_worker_lost": True, **options}
    return shared_task(name=name, queue=queue, **options)


def runs_eagerly() -> bool:
    """True only in unit tests that asked Celery to run tasks inside the caller."""
    from config.celery import app

    return bool(app.conf.task_always_eager)
