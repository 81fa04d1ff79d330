"""Database: DATABASE_URL (PostgreSQL in production and CI), else a SQLite file under var/."""

import dj_database_url

from .env import BASE_DIR, env_int, env_str

_default_sqlite = f"sqlite:///{BASE_DIR / 'var' / 'preflab.sqlite3'}"

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "") or _default_sqlite,
        conn_max_age=env_int("PREFLAB_DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent readers while the in-process worker writes: WAL, and wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
