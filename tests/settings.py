"""The test suite's settings: production's (config.settings) with a secret key of its own and plain
HTTP, which the test client and the live server speak. Set in the environment, so the workers and
servers that tests start as processes run on the same settings."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "preflab-test-suite-key-not-for-production-0123456789abcdef")
os.environ.setdefault("PREFLAB_HTTPS", "0")

from config.settings import *  # noqa: F403

# Each test process counts log-in failures in its own memory (an autouse fixture empties it), never
# in the Redis that CI's workers use as their broker.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "preflab-tests"}}
