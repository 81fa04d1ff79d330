"""The log-in lock-out, shared by the log-in page and POST /api/auth/token/: failed attempts are
counted per username and per client address in a sliding window (Django's cache: Redis in
production, the process's memory in the demo); past either limit, no password is even checked
until the oldest failure in the window has aged out, and the answer says how long that is.

A successful log-in does not count. If the cache does not answer (Redis down), log-ins go on
unlimited rather than failing, and the outage is logged.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

log = logging.getLogger(__name__)


def client_address(request: HttpRequest) -> str:
    """The address the request came from: REMOTE_ADDR, or, behind PREFLAB_NUM_PROXIES proxies, the
    address the outermost of them saw (X-Forwarded-For, read from the right: a client can prepend
    any address it likes, but not what the proxies append)."""
    proxies = settings.PREFLAB_NUM_PROXIES
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies > 0 and forwarded:
        addresses = [address.strip() for address in forwarded.split(",") if address.strip()]
        if addresses:
            return addresses[-min(proxies, len(addresses))]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def failure_counters(*, username: str, address: str) -> list[tuple[str, int]]:
    """The cache keys that count this attempt's failures, each with its limit."""
    name = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    return [
        (f"login-failures:user:{name}", settings.PREFLAB_LOGIN_MAX_FAILURES),
        (f"login-failures:addr:{address}", settings.PREFLAB_LOGIN_MAX_FAILURES_PER_ADDRESS),
    ]


def _recent(key: str, now: float) -> list[float]:
    window = settings.PREFLAB_LOGIN_FAILURE_WINDOW_SECONDS
    return [stamp for stamp in cache.get(key, []) if stamp > now - window]


def retry_after(*, username: str, address: str, now: float | None = None) -> int | None:
    """Seconds until a log-in may be tried again, or None when it may be tried now."""
    now = time.time() if now is None else now
    window = settings.PREFLAB_LOGIN_FAILURE_WINDOW_SECONDS
    wait = 0.0
    try:
        for key, limit in failure_counters(username=username, address=address):
            failures = _recent(key, now)
            if len(failures) >= limit:
                # Locked until enough of the failures have left the window to leave room for one.
                wait = max(wait, failures[-limit] + window - now)
    except Exception:  # the cache's own errors (redis.RedisError ...) differ by backend
        log.warning("The log-in lock-out could not read the cache; this attempt is not limited.", exc_info=True)
        return None
    return max(1, math.ceil(wait)) if wait > 0 else None


def failure_record(*, username: str, address: str, now: float | None = None) -> None:
    """Count one failed log-in against the username and the address."""
    now = time.time() if now is None else now
    window = settings.PREFLAB_LOGIN_FAILURE_WINDOW_SECONDS
    try:
        for key, limit in failure_counters(username=username, address=address):
            # Not atomic: two failures at the same instant may count as one, which a lock-out can afford.
            failures = [*_recent(key, now), now][-limit:]
            cache.set(key, failures, timeout=window)
    except Exception:
        log.warning("The log-in lock-out could not write the cache; this failure is not counted.", exc_info=True)


def lockout_message(seconds: int) -> str:
    if seconds < 90:
        when = f"{seconds} second{'s' if seconds != 1 else ''}"
    else:
        minutes = math.ceil(seconds / 60)
        when = f"{minutes} minutes"
    return f"Too many failed log-ins; try again in {when}."
