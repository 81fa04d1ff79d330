"""Who may log in, and for how long: password rules, the log-in lock-out, API token lifetime."""

from .env import env_int

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Every password log-in (the log-in page, POST /api/auth/token/, the Django admin) counts failed
# attempts per username and per client address within a sliding window; past either limit the page
# and the token endpoint answer 429 saying when to try again (accounts/lockout.py, backends.py).
AUTHENTICATION_BACKENDS = ["accounts.backends.LoginLockoutGate", "django.contrib.auth.backends.ModelBackend"]
PREFLAB_LOGIN_FAILURE_WINDOW_SECONDS = env_int("PREFLAB_LOGIN_FAILURE_WINDOW_SECONDS", 300)
PREFLAB_LOGIN_MAX_FAILURES = env_int("PREFLAB_LOGIN_MAX_FAILURES", 10)
# Higher: an annotation vendor's office may share one address.
PREFLAB_LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("PREFLAB_LOGIN_MAX_FAILURES_PER_ADDRESS", 50)
# Reverse proxies in front of the web server that append to X-Forwarded-For (0: none, the address is
# REMOTE_ADDR). Behind one proxy, without this every client would share the proxy's address.
PREFLAB_NUM_PROXIES = env_int("PREFLAB_NUM_PROXIES", 0)

# An API token older than this is refused (401); POST /api/auth/token/ then hands out a new one, and
# POST /api/auth/token/rotate/ replaces a token before it expires.
PREFLAB_TOKEN_MAX_AGE_DAYS = env_int("PREFLAB_TOKEN_MAX_AGE_DAYS", 30)
