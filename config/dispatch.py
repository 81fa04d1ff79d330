"""Hand a long Celery task to what runs it, once the transaction that asked for it has committed.

* With a broker (REDIS_URL set): ``task.apply_async``; config.settings.celery routes it to its queue.
* Without one (the embedded default, Celery eager): one daemon thread of this process per queue name
  works through that queue's tasks one at a time, like a worker with concurrency 1 (one training
  run at a time, as on a GPU worker). Eager Celery would run the task inside the request that
  queued it; a reward-model run takes minutes, so the request returns the queued row and the page
  polls it instead.

`sampling.dispatch` does the same for generation jobs, with batching of its own; this is the plain
form for tasks that take one id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from django.db import connections, transaction

logger = logging.getLogger(__name__)


def runs_in_process() -> bool:
    """True in the embedded default (no broker): tasks run in this process."""
    from config.celery import app

    return bool(app.conf.task_always_eager)


def enqueue(task: Any, *args: Any, queue: str, on_error: Callable[[Exception], None] | None = None) -> None:
    """Dispatch ``task(*args)`` after the current transaction commits (at once outside one).

    ``on_error`` is called with the exception when the broker cannot be reached, so the caller can
    say so on its row instead of leaving it queued for ever.
    """
    transaction.on_commit(partial(dispatch, task, args, queue=queue, on_error=on_error))


def dispatch(
    task: Any, args: Sequence[Any], *, queue: str, on_error: Callable[[Exception], None] | None = None
) -> None:
    if runs_in_process():
        runner(queue).submit(task, tuple(args))
        return
    try:
        task.apply_async(args=list(args))
    except Exception as exc:
        logger.exception("could not queue %s%s", getattr(task, "name", task), tuple(args))
        if on_error is not None:
            on_error(exc)


class InProcessQueue:
    """A FIFO of tasks run one at a time by a daemon thread of this process."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._pending: list[tuple[Any, tuple[Any, ...]]] = []
        self._running: tuple[Any, tuple[Any, ...]] | None = None
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, task: Any, args: tuple[Any, ...]) -> None:
        with self._condition:
            if (task, args) not in self._pending:
                self._pending.append((task, args))
            self._condition.notify_all()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=f"preflab-{self.name}", daemon=True)
                self._thread.start()

    def holds(self, task: Any, args: tuple[Any, ...]) -> bool:
        """Whether ``task(*args)`` is waiting or running here."""
        with self._condition:
            return (task, args) in self._pending or self._running == (task, args)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running (tests, the demo command); False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._pending and self._running is None, timeout)

    def _loop(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: bool(self._pending))
                task, args = self._pending.pop(0)
                self._running = (task, args)
            try:
                task(*args)
            except Exception:
                logger.exception("%s%s failed in the in-process %s queue", getattr(task, "name", task), args, self.name)
            finally:
                connections.close_all()  # this thread's own connections
                with self._condition:
                    self._running = None
                    self._condition.notify_all()


_queues: dict[str, InProcessQueue] = {}
_queues_lock = threading.Lock()


def runner(queue: str) -> InProcessQueue:
    """The in-process queue of that name (created on first use)."""
    with _queues_lock:
        if queue not in _queues:
            _queues[queue] = InProcessQueue(queue)
        return _queues[queue]
