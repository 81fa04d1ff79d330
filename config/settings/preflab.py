"""Preflab's own settings (PREFLAB_*)."""

from .env import BASE_DIR, env_bool, env_int, env_str

# Service-backed tests fail instead of skipping when PostgreSQL or Redis is missing (CI sets it).
PREFLAB_REQUIRE_SERVICES = env_bool("PREFLAB_REQUIRE_SERVICES", False)
PREFLAB_LEASE_MINUTES = env_int("PREFLAB_LEASE_MINUTES", 10)
PREFLAB_DEFAULT_OVERLAP = env_int("PREFLAB_DEFAULT_OVERLAP", 3)
# Ratings this much older than a batch's report still count as newer (they were stamped before they
# committed): the reconciler recomputes a report until it has seen them.
PREFLAB_AGREEMENT_SLACK_SECONDS = float(env_str("PREFLAB_AGREEMENT_SLACK_SECONDS", "10"))
# A batch's report is recomputed at most this often on its own (a researcher's "recompute now" always
# runs): on a busy batch, completed comparisons within the interval are picked up by the reconciler.
PREFLAB_AGREEMENT_MIN_INTERVAL_SECONDS = float(env_str("PREFLAB_AGREEMENT_MIN_INTERVAL_SECONDS", "10"))
PREFLAB_IMPORT_MAX_BYTES = env_int("PREFLAB_IMPORT_MAX_BYTES", 200 * 1024 * 1024)
PREFLAB_MODEL_CACHE = env_str("PREFLAB_MODEL_CACHE", str(BASE_DIR / "var" / "models"))
PREFLAB_VAR_DIR = env_str("PREFLAB_VAR_DIR", str(BASE_DIR / "var"))
