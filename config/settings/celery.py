"""Celery: Redis as the broker when REDIS_URL is set; without it (the embedded default) a broker in
files under var/broker/, so `make demo` runs a real worker and beat with nothing else installed.

Tasks carry their own names and queues (core.jobs.job_task): default, sampling, training.
"""

from pathlib import Path

from .env import env_bool, env_int, env_str
from .preflab import PREFLAB_VAR_DIR

REDIS_URL = env_str("REDIS_URL", "")
# kombu's filesystem transport: messages are files, any number of processes on one machine share them.
PREFLAB_BROKER_DIR = env_str("PREFLAB_BROKER_DIR", f"{PREFLAB_VAR_DIR}/broker")
CELERY_BROKER_URL = REDIS_URL or "filesystem://localhost/"
PREFLAB_REDIS_TRANSPORT_OPTIONS = {
    # Redis gives an unacknowledged message back after this long. The reconciler recovers work
    # whose worker died long before; this only has to be longer than the longest training run, so
    # Redis does not hand a run that is still training to a second worker.
    "visibility_timeout": env_int("PREFLAB_VISIBILITY_TIMEOUT_SECONDS", 48 * 3600),
    # A send while Redis is down gives up after one quick retry instead of about 6 s of them: the
    # row stays queued and the reconciler sends it when Redis is back (workers reconnect on their own).
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
    # A Redis that hangs (no answer, no reset) must not hold a request either. The read timeout stays
    # above kombu's 1 s blocking pop, which workers wait in.
    "socket_connect_timeout": 1,
    "socket_timeout": 3,
}
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = PREFLAB_REDIS_TRANSPORT_OPTIONS
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": f"{PREFLAB_BROKER_DIR}/messages",
        "data_folder_out": f"{PREFLAB_BROKER_DIR}/messages",
        "control_folder": f"{PREFLAB_BROKER_DIR}/control",
        "polling_interval": 0.2,
    }
    # Every process that sends or receives needs the folders; var/ is not in git.
    for _folder in ("messages", "control"):
        Path(PREFLAB_BROKER_DIR, _folder).mkdir(parents=True, exist_ok=True)
CELERY_RESULT_BACKEND = None
# Eager execution runs tasks inside the caller: only unit tests that ask for it (PREFLAB_TASKS_EAGER).
CELERY_TASK_ALWAYS_EAGER = env_bool("PREFLAB_TASKS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# The reconciler (core.jobs.reconcile): re-sends lost messages, recovers dead workers' work, keeps
# agreement reports current, closes overdue quiz sections, removes failed exports' partial files.
PREFLAB_RECONCILE_SECONDS = float(env_str("PREFLAB_RECONCILE_SECONDS", "15"))
CELERY_BEAT_SCHEDULE = {
    "reconcile": {
        "task": "core.reconcile",
        "schedule": PREFLAB_RECONCILE_SECONDS,
        # A tick that waited longer than one interval is dropped: the next one does the same work.
        "options": {"queue": "default", "expires": PREFLAB_RECONCILE_SECONDS},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = env_str("PREFLAB_BEAT_SCHEDULE_FILE", f"{PREFLAB_VAR_DIR}/celerybeat-schedule")

# A running row writes a heartbeat this often; queued rows not picked up are sent again after
# PREFLAB_JOBS_RESEND_SECONDS, doubling with each send up to PREFLAB_JOBS_RESEND_MAX_SECONDS.
PREFLAB_JOBS_HEARTBEAT_SECONDS = float(env_str("PREFLAB_JOBS_HEARTBEAT_SECONDS", "5"))
PREFLAB_JOBS_RESEND_SECONDS = float(env_str("PREFLAB_JOBS_RESEND_SECONDS", "60"))
PREFLAB_JOBS_RESEND_MAX_SECONDS = float(env_str("PREFLAB_JOBS_RESEND_MAX_SECONDS", "600"))
# Dataset builds, exports and evaluations without a heartbeat this long lost their worker.
PREFLAB_JOBS_STALE_SECONDS = float(env_str("PREFLAB_JOBS_STALE_SECONDS", "60"))
PREFLAB_JOBS_MAX_ATTEMPTS = env_int("PREFLAB_JOBS_MAX_ATTEMPTS", 3)
