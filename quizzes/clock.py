"""The quizzes' clock: every deadline decision reads `now()`, which tests can freeze and move.

Services also take `now=` for one call; this module is for tests that go through the API or a
browser (the live server runs in the test process, so a frozen clock applies there too).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.utils import timezone

_frozen_at: datetime | None = None


def now() -> datetime:
    return _frozen_at if _frozen_at is not None else timezone.now()


class FrozenClock:
    """A stopped clock that only moves when told to."""

    def __init__(self, at: datetime):
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        global _frozen_at
        self.at = self.at + timedelta(**delta)
        _frozen_at = self.at
        return self.at


@contextmanager
def frozen(at: datetime | None = None) -> Iterator[FrozenClock]:
    """Stop the clock at `at` (default: the real time now) until the block ends."""
    global _frozen_at
    previous = _frozen_at
    clock = FrozenClock(at or timezone.now())
    _frozen_at = clock.at
    try:
        yield clock
    finally:
        _frozen_at = previous
