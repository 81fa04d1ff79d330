"""Shared fixtures. Service-backed fixtures skip locally when a service is missing and fail in CI
(PREFLAB_REQUIRE_SERVICES=1), so a green CI run really exercised PostgreSQL, Redis and Chromium."""

import os
import shutil

import pytest
from django.conf import settings
from django.db import connection

# Playwright's sync API runs an event loop in the test thread; Django's ORM calls from that thread are safe here.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CHROMIUM = os.environ.get("PREFLAB_CHROMIUM", "/usr/bin/chromium")


def missing_service(reason: str) -> None:
    """Fail in CI, skip on a developer machine that lacks the service."""
    if settings.PREFLAB_REQUIRE_SERVICES:
        pytest.fail(f"{reason} (PREFLAB_REQUIRE_SERVICES=1, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture
def postgres(db):
    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL: set DATABASE_URL=postgres://... to run it")
    return connection


@pytest.fixture
def redis_url():
    import redis

    url = settings.REDIS_URL or os.environ.get("PREFLAB_TEST_REDIS_URL", "")
    if not url:
        missing_service("needs Redis: set REDIS_URL=redis://127.0.0.1:6379/0 to run it")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        missing_service(f"Redis at {url} is not answering: {exc}")
    return url


@pytest.fixture(scope="session")
def chromium_browser():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        missing_service(f"needs Debian's chromium at {CHROMIUM} (make browser installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium_browser):
    # bypass_csp: Playwright's wait_for_function evaluates a string in the page, which the pages'
    # Content-Security-Policy forbids; tests/frontend/test_error_pages.py drives the pages under it.
    context = chromium_browser.new_context(viewport={"width": 1366, "height": 900}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


WORKER_FIXTURES = ("celery_worker", "embedded_worker", "own_redis")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Factories set a password on every user; PBKDF2 makes that half a second each on a small machine."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _no_login_failures_left_from_another_test():
    """The log-in lock-out counts failures in the cache (tests.settings: this process's memory)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def media(settings, tmp_path):
    """Exports and checkpoints under a temporary MEDIA_ROOT."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def researcher():
    from tests.factories import UserFactory

    return UserFactory(username="rhea")


@pytest.fixture(autouse=True)
def _agreement_follows_every_completed_comparison(settings):
    """Without a reconciler running, a report must not wait out the minimum interval between
    recomputes (tests of that interval set it themselves)."""
    settings.PREFLAB_AGREEMENT_MIN_INTERVAL_SECONDS = 0


@pytest.fixture(autouse=True)
def _celery_runs_eagerly_unless_a_worker_is_asked_for(request):
    """Unit tests run tasks eagerly, inside the caller, unless they take a real worker."""
    from config.celery import app

    eager = not any(name in request.fixturenames for name in WORKER_FIXTURES)
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = eager
    yield
    app.conf.task_always_eager = previous


def use_broker(url: str, transport_options: dict) -> None:
    """Point this process's Celery app at another broker (its connection pool is rebuilt)."""
    from config.celery import app

    # New pools are built on the next send (the old ones are left to the garbage collector: closing
    # them would also close kombu's shared producer pools that a worker still uses).
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = url
    app.conf.broker_transport_options = transport_options


def file_broker_options(folder) -> dict:
    """kombu's filesystem transport in `folder`, as the embedded default runs it (config.settings.celery)."""
    (folder / "messages").mkdir(parents=True, exist_ok=True)
    (folder / "control").mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "messages"),
        "data_folder_out": str(folder / "messages"),
        "control_folder": str(folder / "control"),
        "polling_interval": 0.05,
    }


def _start_worker(app, queues=("default", "sampling", "training")):
    from celery.contrib.testing.worker import start_worker

    return start_worker(
        app,
        queues=list(queues),
        pool="threads",
        concurrency=3,
        perform_ping_check=False,
        shutdown_timeout=60,
    )


@pytest.fixture
def embedded_worker(transactional_db, tmp_path):
    """A real Celery worker (threads of this process) on the embedded default's file broker, as
    `make demo` runs it: no Redis needed."""
    from config.celery import app

    previous = (app.conf.broker_url, app.conf.broker_transport_options)
    use_broker("filesystem://", file_broker_options(tmp_path / "broker"))
    try:
        with _start_worker(app) as worker:
            yield worker
    finally:
        use_broker(*previous)


@pytest.fixture
def celery_worker(redis_url, transactional_db):
    """A real Celery worker (threads of this process) consuming every queue from Redis."""
    from config.celery import app

    previous = (app.conf.broker_url, app.conf.broker_transport_options)
    use_broker(redis_url, settings.PREFLAB_REDIS_TRANSPORT_OPTIONS)
    app.control.purge()  # nothing left over from an earlier run may be picked up by this worker
    try:
        with _start_worker(app) as worker:
            yield worker
    finally:
        use_broker(*previous)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1):
    """Poll until predicate() is truthy (for work done by a worker); fail with a clear message otherwise."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    """Where the embedded model is converted: $PREFLAB_MODEL_CACHE (e.g. var/models, kept between
    runs) when set, else a temporary folder removed afterwards (each conversion is 517 MB)."""
    from pathlib import Path

    if os.environ.get("PREFLAB_MODEL_CACHE"):
        yield Path(os.environ["PREFLAB_MODEL_CACHE"])
        return
    cache = tmp_path_factory.mktemp("models")
    yield cache
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_checkpoint(model_cache):
    """SmolLM2-135M-Instruct converted once per test session (~20 s the first time) and shared."""
    from sampling.embedded import ensure_embedded_checkpoint

    return ensure_embedded_checkpoint(model_cache)


@pytest.fixture
def single_torch_thread(settings):
    """Sampling on one torch thread: on a shared 2-core machine two threads spin-wait for each other."""
    settings.PREFLAB_TORCH_THREADS = 1


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """On SQLite, test in a database file (WAL and a busy timeout, as the embedded default runs) rather
    than Django's shared-cache in-memory database, where a writer locks whole tables and a reader
    fails at once with "database table is locked": a training thread writing progress while the test
    or the live server reads it would fail at random. One file per session, so sessions run side by side."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("database") / "test.sqlite3")
