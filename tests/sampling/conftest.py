"""Fixtures of the sampling tests: the fake OpenAI-compatible server process, the task modules
loaded as a worker loads them, and settings that keep sampling single-threaded and quick on the
shared two-core CI machine.

Unit tests run a job's task eagerly when the transaction that queued it commits (tests/conftest.py
asks Celery for eager execution unless a test takes a real worker: `embedded_worker`, `celery_worker`)."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_SCRIPT = Path(__file__).with_name("fake_openai_server.py")


@dataclass
class FakeServer:
    """Handle on the running fake server: its base URL and its two control routes."""

    base_url: str

    def set(self, behaviour: str, **settings: float) -> None:
        body = json.dumps({"behaviour": behaviour, **settings}).encode()
        request = urllib.request.Request(f"{self.base_url}/_control", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def requests(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.base_url}/_requests", timeout=5) as response:
            return json.load(response)


@pytest.fixture(scope="session")
def fake_server_process() -> Iterator[str]:
    """Start the server process and wait until it reports the port it listens on."""
    process = subprocess.Popen([sys.executable, str(SERVER_SCRIPT), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 15)
        line = process.stdout.readline() if ready else ""
        if not line.startswith("listening on "):
            pytest.fail(f"fake server did not start (exit code {process.poll()}, said {line!r})")
        port = int(line.split()[-1])
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def server(fake_server_process: str) -> FakeServer:
    fake = FakeServer(fake_server_process)
    fake.set("ok")
    return fake


def load_task_modules() -> None:
    """Register every app's tasks, as a worker does when it starts.

    core.jobs.send_task looks an eager task up by name in the app's registry, which Celery fills only
    when a worker starts or a tasks module is imported: without this, a test that sends a generation
    job eagerly fails with NotRegistered unless an earlier test happened to import sampling.tasks.
    """
    from config.celery import app

    app.loader.import_default_modules()


@pytest.fixture(autouse=True)
def _task_modules_loaded() -> None:
    load_task_modules()


@pytest.fixture(autouse=True)
def _sampling_settings(settings) -> None:
    """One torch thread, quick endpoint retries."""
    settings.PREFLAB_TORCH_THREADS = 1
    settings.PREFLAB_OPENAI_MAX_ATTEMPTS = 2
    settings.PREFLAB_OPENAI_CONNECT_TIMEOUT = 1.0
    settings.PREFLAB_OPENAI_READ_TIMEOUT = 2.0
    settings.PREFLAB_OPENAI_BACKOFF_BASE = 0.01
    settings.PREFLAB_OPENAI_BACKOFF_MAX = 0.05


def make_variant(name: str, **fields):
    from sampling import services

    return services.variant_create(name=name, created_by=None, **fields)


def prompt_batch(variants, *, temperatures=(0.6, 1.0), mode="set", max_new_tokens=None, **batch_fields):
    """An annotator-written-prompts batch whose pair policy samples from `variants`."""
    from sampling import services
    from tests.factories import BatchFactory

    batch_fields.setdefault("prompt_mode", "annotator")
    batch_fields.setdefault("overlap", 1)
    batch = BatchFactory(**batch_fields)
    services.pair_policy_set(
        batch=batch,
        variant_ids=[v.pk for v in variants],
        temperature_mode=mode,
        temperatures=list(temperatures),
        max_new_tokens=max_new_tokens,
        updated_by=None,
    )
    return batch


@pytest.fixture
def endpoint_variants(db, server: FakeServer) -> list:
    """Two variants behind the fake endpoint; it answers with the temperature and seed it was sent."""
    server.set("varied")
    common = {"backend": "openai", "base_url": f"{server.base_url}/v1", "max_new_tokens": 16}
    return [
        make_variant("endpoint-terse", api_model="terse-7b", system_prompt="Answer in one line.", **common),
        make_variant("endpoint-warm", api_model="warm-7b", system_prompt="Answer kindly.", top_p=0.95, **common),
    ]


@pytest.fixture
def smollm_variants(db, settings, embedded_checkpoint: Path) -> list:
    """The two demo-style variants on the embedded SmolLM2, with short responses for the CI machine."""
    from sampling.variant_backends import EMBEDDED_CHECKPOINT

    settings.PREFLAB_MODEL_CACHE = str(embedded_checkpoint.parent)
    common = {"backend": "transformers", "checkpoint_path": EMBEDDED_CHECKPOINT, "max_new_tokens": 12}
    return [
        make_variant("smollm2-concise", system_prompt="Answer briefly and factually.", top_p=0.9, **common),
        make_variant("smollm2-friendly", system_prompt="You are a warm, patient tutor.", top_p=0.95, **common),
    ]
