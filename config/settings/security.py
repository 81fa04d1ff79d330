"""Secrets and transport: DEBUG, the secret key, allowed hosts, HTTPS (HSTS, secure cookies, the
proxy's SSL header) and the Content-Security-Policy of the pages.

Three ways to run: production (the default: DEBUG off, HTTPS, DJANGO_SECRET_KEY required), the demo
(`make demo` sets PREFLAB_DEMO=1: DEBUG on, plain HTTP, a key generated once under var/), and the
test suite (tests/settings.py: a key of its own, plain HTTP for the test client and live server).
"""

import os
import secrets
import time
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_int, env_list, env_str
from .preflab import PREFLAB_VAR_DIR

PREFLAB_DEMO = env_bool("PREFLAB_DEMO", False)
DEBUG = env_bool("DJANGO_DEBUG", PREFLAB_DEMO)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# Keys that were published (this project's former built-in key) or that Django itself calls insecure.
_PUBLISHED_KEYS = {"preflab-insecure-development-key-change-me-in-production"}


def local_secret_key(path: Path) -> str:
    """The key of a local run, generated on first use and kept in `path`, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: of two processes starting together, one writes the key and the other reads it.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the writer may not have written it yet
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.1)
        raise ImproperlyConfigured(f"{path} is empty: remove it and a new secret key is generated.") from None
    key = secrets.token_urlsafe(50)
    with os.fdopen(descriptor, "w") as file:
        file.write(key + "\n")
    return key


def production_secret_key(key: str) -> str:
    """The production key, refused when it is missing or a development one."""
    if not key:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Production (DJANGO_DEBUG off, PREFLAB_DEMO off) needs a secret "
            "key of its own: set DJANGO_SECRET_KEY to a long random value, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`. For a local run set "
            "PREFLAB_DEMO=1 (as `make demo` does) and a key is generated under var/."
        )
    if key in _PUBLISHED_KEYS or key.startswith("django-insecure"):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is a development key that is published; production refuses it. Set "
            "DJANGO_SECRET_KEY to a long random value of your own."
        )
    return key


PREFLAB_SECRET_KEY_FILE = env_str("PREFLAB_SECRET_KEY_FILE", str(Path(PREFLAB_VAR_DIR) / "secret_key"))
if PREFLAB_DEMO or DEBUG:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY", "") or local_secret_key(Path(PREFLAB_SECRET_KEY_FILE))
else:
    SECRET_KEY = production_secret_key(env_str("DJANGO_SECRET_KEY", ""))

# HTTPS: on in production, off for the demo and a DEBUG run (both serve plain HTTP on 127.0.0.1).
PREFLAB_HTTPS = env_bool("PREFLAB_HTTPS", not (DEBUG or PREFLAB_DEMO))
SECURE_SSL_REDIRECT = PREFLAB_HTTPS
SESSION_COOKIE_SECURE = PREFLAB_HTTPS
CSRF_COOKIE_SECURE = PREFLAB_HTTPS
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 365 * 24 * 3600) if PREFLAB_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
# Behind a proxy that ends TLS: the header it sets and the value that means HTTPS, e.g.
# "X-Forwarded-Proto: https". Only set it when the proxy always sets (or strips) that header.
_proxy_header = env_str("DJANGO_SECURE_PROXY_SSL_HEADER", "")
if _proxy_header:
    _name, _, _value = _proxy_header.partition(":")
    if not _value.strip():
        raise ImproperlyConfigured(
            f"DJANGO_SECURE_PROXY_SSL_HEADER must look like 'X-Forwarded-Proto: https', not {_proxy_header!r}."
        )
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _name.strip().upper().replace("-", "_"), _value.strip())
SESSION_COOKIE_HTTPONLY = True

# The pages load scripts and styles from /static only (ES modules, no inline script). Inline style
# *attributes* stay allowed for the server-computed bar widths (style="width: 40%"); they cannot run
# code. The API docs (Swagger UI, Redoc) inject styles and run a search worker, so they get their own.
PREFLAB_CONTENT_SECURITY_POLICY = env_str(
    "PREFLAB_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'",
)
PREFLAB_CONTENT_SECURITY_POLICY_API_DOCS = env_str(
    "PREFLAB_CONTENT_SECURITY_POLICY_API_DOCS",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'",
)
