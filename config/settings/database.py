"""Database: DATABASE_URL (PostgreSQL in production and CI), else a SQLite file under var/."""

from pathlib import Path

import dj_database_url

from .env import env_int, env_str
from .preflab import PREFLAB_VAR_DIR

_default_sqlite = f"sqlite:///{Path(PREFLAB_VAR_DIR) / 'preflab.sqlite3'}"

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
    # var/ is not in git: a fresh clone's first command creates it rather than failing to open the file.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
