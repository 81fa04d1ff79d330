"""Fixtures of the fault tests: a Redis server the test owns, and this process sending to it."""

import pytest

from tests.conftest import use_broker

from .processes import RedisServer


@pytest.fixture
def own_redis(transactional_db, tmp_path, settings):
    """A Redis on its own port that the test may stop and start; this process (the web side) sends
    its tasks there, as a web server with REDIS_URL does. Workers are started by the test."""
    from config.celery import app

    settings.MEDIA_ROOT = str(tmp_path / "media")
    server = RedisServer(tmp_path / "redis").start()
    previous = (app.conf.broker_url, app.conf.broker_transport_options)
    use_broker(server.url, settings.PREFLAB_REDIS_TRANSPORT_OPTIONS)
    try:
        yield server
    finally:
        use_broker(*previous)
        server.stop()
