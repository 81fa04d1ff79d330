"""Production-safe defaults (issue 12): each case loads config.settings in a fresh process with the
environment a deployment or the demo would give it, so nothing leaks in from the test settings."""

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = secrets.token_urlsafe(50)


def run_django(tmp_path, code: str, **env: str) -> subprocess.CompletedProcess:
    """`code` after django.setup() on config.settings, in a process whose environment is only `env`."""
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PREFLAB_VAR_DIR": str(tmp_path / "var"),
        **env,
    }
    program = f"import django\ndjango.setup()\nfrom django.conf import settings\n{code}"
    return subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_debug_is_off_unless_turned_on(tmp_path):
    bare = run_django(tmp_path, "print(settings.DEBUG, settings.SECURE_SSL_REDIRECT)", DJANGO_SECRET_KEY=STRONG_KEY)
    assert bare.returncode == 0, bare.stderr
    assert bare.stdout.split() == ["False", "True"]
    demo = run_django(tmp_path, "print(settings.DEBUG, settings.SECURE_SSL_REDIRECT)", PREFLAB_DEMO="1")
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.split() == ["True", "False"]
    demo_without_debug = run_django(tmp_path, "print(settings.DEBUG)", PREFLAB_DEMO="1", DJANGO_DEBUG="0")
    assert demo_without_debug.stdout.split() == ["False"]


@pytest.mark.parametrize(
    "key",
    ["", "preflab-insecure-development-key-change-me-in-production", "django-insecure-" + "x" * 50],
    ids=["missing", "the former built-in key", "django-insecure"],
)
def test_production_refuses_to_start_without_a_key_of_its_own(tmp_path, key):
    started = run_django(tmp_path, "print(settings.SECRET_KEY)", DJANGO_SECRET_KEY=key)
    assert started.returncode != 0
    assert "ImproperlyConfigured" in started.stderr
    assert "set django_secret_key" in started.stderr.lower()
    assert not (tmp_path / "var" / "secret_key").exists()


def test_the_demo_generates_its_key_once_readable_by_its_owner_only(tmp_path):
    first = run_django(tmp_path, "print(settings.SECRET_KEY)", PREFLAB_DEMO="1")
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "var" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = first.stdout.strip()
    assert len(key) >= 50 and key_file.read_text().strip() == key
    again = run_django(tmp_path, "print(settings.SECRET_KEY)", PREFLAB_DEMO="1")
    assert again.stdout.strip() == key  # sessions survive a restart of the demo


def test_check_deploy_under_production_settings_prints_no_warning(tmp_path):
    checked = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", str(tmp_path)),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PREFLAB_VAR_DIR": str(tmp_path / "var"),
            "DJANGO_SECRET_KEY": STRONG_KEY,
            "DJANGO_ALLOWED_HOSTS": "preflab.example.org",
            "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto: https",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = checked.stdout + checked.stderr
    # Every warning counts, the OpenAPI schema's (drf_spectacular.*) too: the deploy check prints none.
    assert checked.returncode == 0, output
    assert "System check identified no issues" in output, output


def test_the_proxy_ssl_header_comes_from_the_environment(tmp_path):
    read = run_django(
        tmp_path,
        "print(settings.SECURE_PROXY_SSL_HEADER)",
        DJANGO_SECRET_KEY=STRONG_KEY,
        DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https",
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')"
    malformed = run_django(
        tmp_path,
        "print(settings.SECURE_PROXY_SSL_HEADER)",
        DJANGO_SECRET_KEY=STRONG_KEY,
        DJANGO_SECURE_PROXY_SSL_HEADER="on",
    )
    assert malformed.returncode != 0 and "X-Forwarded-Proto: https" in malformed.stderr


def test_production_redirects_to_https_and_marks_its_cookies_secure(client, settings, db):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/login/").status_code == 301
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.CSRF_COOKIE_SECURE = True
    page = client.get("/login/", headers={"X-Forwarded-Proto": "https"})
    assert page.status_code == 200
    assert page.cookies["csrftoken"]["secure"]


def test_pages_and_the_api_docs_carry_a_content_security_policy(client, db):
    page = client.get("/login/")
    policy = page["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";", 1)[0]
    from tests.factories import UserFactory

    client.force_login(UserFactory())
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and "style-src 'self' 'unsafe-inline'" in docs["Content-Security-Policy"]
    # The Swagger UI's start script is a file of its own, not an inline script the policy would block.
    assert b"<script>" not in docs.content
