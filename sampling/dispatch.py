"""Hand generation jobs to what runs them, once the transaction that queued them has committed.

* With a broker (REDIS_URL set): `sampling.tasks.generate_pairs` on the `sampling` queue, in
  chunks of PREFLAB_SAMPLING_BATCH_JOBS pairs, so several workers can share a large fill.
* Without one (the embedded default, Celery eager): the same task function on one daemon thread of
  this process. Sampling takes seconds, which an HTTP request must not wait for: the request
  returns the queued job and the page polls it. Jobs that arrive while the thread is busy are
  taken together on its next round, batched like a worker batches them.
* PREFLAB_SAMPLING_INLINE: inside the committing request itself (tests that want it synchronous).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import partial

from django.conf import settings
from django.db import connections, transaction

logger = logging.getLogger(__name__)


def enqueue(job_ids: Sequence[int]) -> None:
    """Dispatch the jobs after the current transaction commits (at once outside a transaction)."""
    ids = [int(i) for i in job_ids]
    if ids:
        transaction.on_commit(partial(_dispatch, ids))


def runs_in_process() -> bool:
    from config.celery import app

    return bool(app.conf.task_always_eager)


def _chunks(ids: list[int]) -> list[list[int]]:
    size = max(1, settings.PREFLAB_SAMPLING_BATCH_JOBS)
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _dispatch(ids: list[int]) -> None:
    from .tasks import generate_pairs

    if settings.PREFLAB_SAMPLING_INLINE:
        for chunk in _chunks(ids):
            generate_pairs(chunk)
        return
    if runs_in_process():
        in_process.submit(ids)
        return
    try:
        for chunk in _chunks(ids):
            generate_pairs.apply_async(args=[chunk])
    except Exception as exc:  # the broker is down: say so on the jobs instead of failing the request
        logger.exception("could not queue generation jobs %s", ids)
        from .services import jobs_fail_unqueued

        jobs_fail_unqueued(job_ids=ids, reason=str(exc))


_warmed: set[tuple[int, ...]] = set()
_warm_lock = threading.Lock()


def warm_up(variant_ids: Sequence[int]) -> None:
    """Load local models ahead of use, once per process and set of variants: on a thread of this
    process in the embedded default, else by a task on the sampling queue."""
    key = tuple(sorted(variant_ids))
    if not key or settings.PREFLAB_SAMPLING_INLINE:
        return
    with _warm_lock:
        if key in _warmed:
            return
        _warmed.add(key)
    from .tasks import warm_up_variants

    if runs_in_process():
        threading.Thread(target=_warm_in_thread, args=(list(key),), name="preflab-warm-up", daemon=True).start()
        return
    try:
        warm_up_variants.apply_async(args=[list(key)])
    except Exception:
        logger.warning("could not queue the warm-up of variants %s", key, exc_info=True)
        with _warm_lock:
            _warmed.discard(key)


def _warm_in_thread(variant_ids: list[int]) -> None:
    from .tasks import warm_up_variants

    try:
        warm_up_variants(variant_ids)
    finally:
        connections.close_all()


class InProcessRunner:
    """One daemon thread that runs queued jobs in this process, taking up to a batch per round."""

    def __init__(self) -> None:
        self._pending: list[int] = []
        self._running = 0
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, ids: Sequence[int]) -> None:
        with self._condition:
            self._pending.extend(i for i in ids if i not in self._pending)
            self._condition.notify()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="preflab-sampling", daemon=True)
                self._thread.start()

    def pending(self) -> list[int]:
        with self._condition:
            return list(self._pending)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running (tests, benchmarks); False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._pending and not self._running, timeout)

    def _loop(self) -> None:
        from .tasks import generate_pairs

        while True:
            with self._condition:
                self._condition.wait_for(lambda: bool(self._pending))
                size = max(1, settings.PREFLAB_SAMPLING_BATCH_JOBS)
                taken, self._pending = self._pending[:size], self._pending[size:]
                self._running = len(taken)
            try:
                generate_pairs(taken)
            except Exception:
                logger.exception("generation jobs %s failed in the in-process runner", taken)
            finally:
                connections.close_all()  # this thread's own connections
                with self._condition:
                    self._running = 0
                    self._condition.notify_all()


in_process = InProcessRunner()
