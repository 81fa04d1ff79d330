"""Celery: Redis broker when REDIS_URL is set; without one, tasks run in-process (the embedded default)."""

from .env import env_int, env_str

REDIS_URL = env_str("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "sampling.tasks.*": {"queue": "sampling"},
    "rewardmodel.tasks.train_*": {"queue": "training"},
    "rewardmodel.tasks.*": {"queue": "default"},
    "annotation.tasks.*": {"queue": "default"},
}
# Long jobs: acknowledge after the work, give the message back if the worker dies, one at a time.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Longer than the longest training run, so Redis does not redeliver a job that is still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("PREFLAB_VISIBILITY_TIMEOUT_SECONDS", 48 * 3600),
}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
