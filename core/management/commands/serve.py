"""Serve Preflab with its background work: the web server, a Celery worker on every queue, and beat
(which sends the reconciler every PREFLAB_RECONCILE_SECONDS).

Without REDIS_URL the worker and the web server share the embedded file broker under var/broker/,
so the demo runs the same code path as production with nothing else installed. The command waits
until the web server answers, prints the URL it really serves, and stops both processes together.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

ROOT = Path(settings.BASE_DIR)


class Command(BaseCommand):
    help = "Run the web server together with a Celery worker and beat; stop both with Ctrl+C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--worker-threads", type=int, default=3, help="Tasks the worker runs at once.")
        parser.add_argument("--startup-timeout", type=float, default=120.0)

    def handle(self, *args, host: str, port: int, worker_threads: int, startup_timeout: float, **options):
        started = time.monotonic()
        broker = f"Redis at {settings.REDIS_URL}" if settings.REDIS_URL else f"files in {settings.PREFLAB_BROKER_DIR}"
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "config", "worker", "--beat"),
                *("--queues", "default,sampling,training", "--pool", "threads", "--concurrency", str(worker_threads)),
                *("--hostname", "preflab@%h", "--loglevel", "warning", "--without-mingle", "--without-gossip"),
                *("--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME),
            ],
            cwd=ROOT,
        )
        web = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"{host}:{port}", "--noreload", "--skip-checks"], cwd=ROOT
        )
        children = {"web server": web, "worker": worker}

        def stop(*_args) -> None:
            for child in children.values():
                if child.poll() is None:
                    child.terminate()
            for child in children.values():
                try:
                    child.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    child.kill()

        signal.signal(signal.SIGTERM, lambda *_a: (stop(), sys.exit(0)))
        try:
            url = f"http://{host}:{port}/"
            self._wait_until_serving(url, children, startup_timeout)
            self.stdout.write(
                self.style.SUCCESS(f"\nPreflab is serving at {url}")
                + f"  (answered after {time.monotonic() - started:.1f} s; worker and beat on {broker})\n"
                "Press Ctrl+C to stop the web server and the worker.\n"
            )
            while True:
                for name, child in children.items():
                    if child.poll() is not None:
                        raise CommandError(f"The {name} stopped (exit code {child.returncode}); stopping the rest.")
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            stop()

    def _wait_until_serving(self, url: str, children: dict, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, child in children.items():
                if child.poll() is not None:
                    raise CommandError(f"The {name} stopped while starting (exit code {child.returncode}).")
            try:
                with urllib.request.urlopen(url + "login/", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise CommandError(f"Nothing answered at {url} within {timeout:.0f} s.")
