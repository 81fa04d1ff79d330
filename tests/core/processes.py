"""Real processes for the fault tests: a Redis server a test owns (so it can stop it), and Celery
workers (with beat, so the reconciler runs) in their own process groups (so a test can SIGKILL one
whole). Nothing here is mocked: the faults are the real thing."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.conftest import missing_service

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    """The test database as a URL, for worker and server processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class RedisServer:
    """A redis-server on a free port of 127.0.0.1, started and stopped by the test."""

    def __init__(self, folder: Path) -> None:
        if not os.path.exists(REDIS_SERVER):
            missing_service("needs redis-server on this machine to start a Redis the test can stop")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        # Append-only, as docker-compose runs it: messages survive a restart of the server.
        self.process = subprocess.Popen(
            [
                *(REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)),
                *("--appendonly", "yes", "--save", "", "--protected-mode", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.answers, 20, f"redis-server on port {self.port} did not start")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None

    def answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False


def worker_env(broker_url: str, **overrides: str) -> dict[str, str]:
    """Environment of a worker or server process on the test database and the given broker."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "REDIS_URL": broker_url,
        "PREFLAB_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "PREFLAB_TORCH_THREADS": "1",
        "PREFLAB_RECONCILE_SECONDS": "1",
        "PREFLAB_JOBS_HEARTBEAT_SECONDS": "0.3",
        "PREFLAB_JOBS_RESEND_SECONDS": "2",
        "PREFLAB_JOBS_RESEND_MAX_SECONDS": "4",
        "PREFLAB_JOBS_STALE_SECONDS": "3",
        "PREFLAB_TRAINING_HEARTBEAT_SECONDS": "0.3",
        "PREFLAB_TRAINING_STALE_SECONDS": "3",
        "PREFLAB_TRAINING_PROGRESS_SECONDS": "0",
        "PREFLAB_SAMPLING_STALE_SECONDS": "3",
        "PREFLAB_AGREEMENT_SLACK_SECONDS": "2",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.update(overrides)
    return env


class Worker:
    """`celery worker --beat` in a process group of its own: SIGKILL takes the main process and its
    pool children together, as when a machine or container dies."""

    def __init__(
        self, env: dict[str, str], folder: Path, queues: str = "default,sampling,training", pool: str = "prefork"
    ) -> None:
        self.env, self.folder, self.queues, self.pool = env, folder, queues, pool
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None
        self.log = self.folder / f"worker-{uuid.uuid4().hex[:8]}.log"

    def start(self) -> Worker:
        self.log = self.folder / f"worker-{uuid.uuid4().hex[:8]}.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "celery", "-A", "config", "worker", "--beat"),
                    *("-Q", self.queues, "-P", self.pool, "-c", "2", "-l", "warning"),
                    *("--without-mingle", "--without-gossip", "-n", f"fault-{uuid.uuid4().hex[:8]}@%h"),
                    *("--schedule", str(self.folder / f"beat-{uuid.uuid4().hex[:8]}")),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def kill(self) -> None:
        """SIGKILL the whole worker: main process, pool children and beat, with no chance to clean up."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)
            self.process = None

    def stop(self) -> None:
        stop_group(self.process)
        self.process = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def stop_group(process: subprocess.Popen | None) -> None:
    """SIGTERM a process group started with start_new_session, SIGKILL it if it lingers."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def wait_until(predicate, timeout: float, message: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{message} (waited {timeout:.0f} s)")


PG_BINARIES = "/usr/lib/postgresql/*/bin"


class PostgresCluster:
    """A private PostgreSQL cluster on a free port of 127.0.0.1 that a test may restart or stop.

    It runs as the `postgres` OS user when the tests run as root (PostgreSQL refuses root), with trust
    authentication and its unix socket in its own folder. The folder is made under the system's
    temporary directory rather than pytest's, whose `pytest-of-root` is closed to other users.
    """

    def __init__(self, database: str = "preflab") -> None:
        import glob
        import tempfile

        found = [Path(p) for p in glob.glob(PG_BINARIES) if Path(p, "pg_ctl").exists()]
        if not found:
            missing_service(f"needs PostgreSQL's initdb and pg_ctl under {PG_BINARIES} to run a private cluster")
        self.bin = max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            if not shutil.which("runuser"):
                missing_service("needs runuser to start PostgreSQL as the postgres user")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self.database = database
        self.folder = Path(tempfile.mkdtemp(prefix="preflab-pg-"))
        self.data = self.folder / "data"
        self.sockets = self.folder / "sockets"
        self.log = self.folder / "postgres.log"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, program: str, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [*self.as_owner, str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            raise AssertionError(f"{program} {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> PostgresCluster:
        """Initialise the cluster and its database on the first call, then start it."""
        if not self.data.exists():
            self.sockets.mkdir()
            if self.as_owner:
                for path in (self.folder, self.sockets):
                    shutil.chown(path, "postgres", "postgres")
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
            self._pg_ctl("start", "-l", str(self.log), "-o", self._options())
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database)
        else:
            self._pg_ctl("start", "-l", str(self.log), "-o", self._options())
        return self

    def _options(self) -> str:
        # fsync off: this machine is shared; a fast restart is a clean shutdown and loses nothing anyway.
        return (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
            "-c max_connections=60 -c shared_buffers=16MB -c fsync=off"
        )

    def _pg_ctl(self, action: str, *args: str) -> str:
        return self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", action, *args, timeout=90)

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every session is disconnected, open transactions roll back."""
        # With its log file named again: without one the server would keep pg_ctl's output pipe open.
        self._pg_ctl("restart", "-m", "fast", "-l", str(self.log))

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", mode)

    def remove(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


class WebServer:
    """The web app as production runs it (gunicorn, gthread workers) on a free port of 127.0.0.1, in a
    process group of its own."""

    def __init__(self, env: dict[str, str], folder: Path, workers: int = 1, threads: int = 4) -> None:
        self.env, self.folder, self.workers, self.threads = env, folder, workers, threads
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = self.folder / f"web-{uuid.uuid4().hex[:8]}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> WebServer:
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{self.port}"),
                    *("-w", str(self.workers), "-k", "gthread", "--threads", str(self.threads), "--timeout", "60"),
                    "--no-control-socket",  # its default path is shared by every gunicorn of the machine
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(self.answers, timeout, f"the web server on port {self.port} did not answer")
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}:\n{self.output()}") from None
        return self

    def answers(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"the web server stopped:\n{self.output()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        stop_group(self.process)
        self.process = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
