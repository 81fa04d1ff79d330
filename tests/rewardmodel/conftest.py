"""Fixtures of the reward-model tests: settings that keep training runs quick and observable, and the
fake OpenAI-compatible server (a model endpoint for best-of-K). Tests that want a real worker take
`embedded_worker` or `celery_worker` (tests/conftest.py)."""

import pytest

from tests.sampling.conftest import fake_server_process, server  # noqa: F401


@pytest.fixture
def training_settings(settings, tmp_path):
    """Checkpoints under a temporary MEDIA_ROOT, one torch thread (2 shared cores), every step written
    and the cancel flag read before every micro-batch, so tests see each step."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PREFLAB_TORCH_THREADS = 1
    settings.PREFLAB_TRAINING_PROGRESS_SECONDS = 0
    settings.PREFLAB_TRAINING_CANCEL_POLL_SECONDS = 0
    settings.PREFLAB_TRAINING_HEARTBEAT_SECONDS = 0.2
    return settings
