"""A side thread that touches a row's heartbeat while long work runs, so work whose worker died can
be told from work that is merely slow. Every kind of background work in core.jobs uses it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger(__name__)


class Heartbeat:
    """Call `beat()` every `interval` seconds until the `with` block ends; interval <= 0 disables it.

    `beat` runs on its own thread and database connection; a failing beat is logged, not raised, so a
    lost heartbeat never stops the work it describes.
    """

    def __init__(self, beat: Callable[[], object], *, interval: float, name: str, what: str) -> None:
        self.beat, self.interval, self.name, self.what = beat, interval, name, what
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.beat()
                except Exception:
                    logger.warning("could not write the heartbeat of %s", self.what, exc_info=True)
        finally:
            connections.close_all()
