"""The Celery application; configuration lives in config.settings.celery (CELERY_* names), tasks
in each app's tasks.py with explicit names and queues (core.jobs.job_task)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("preflab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
