"""Django's cache (the log-in lock-out counts): Redis, shared by every web process, when
PREFLAB_CACHE_URL or REDIS_URL is set; otherwise each process's memory (the demo has one web process)."""

from .env import env_str

PREFLAB_CACHE_URL = env_str("PREFLAB_CACHE_URL", "") or env_str("REDIS_URL", "")
if PREFLAB_CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": PREFLAB_CACHE_URL,
            "KEY_PREFIX": "preflab",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 3},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "preflab"}}
