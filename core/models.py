"""Fields every background-work row carries for core.jobs (see its docstring)."""

from django.db import models


class BackgroundWork(models.Model):
    """Mixed into each row that stands for background work (a job, a build, a run...)."""

    dispatched_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When its task was last sent to the queue."
    )
    dispatch_count = models.PositiveIntegerField(default=0, editable=False, help_text="Messages sent for it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    worker = models.CharField(
        max_length=200, blank=True, editable=False, help_text="host:pid of the process that ran it last."
    )

    class Meta:
        abstract = True
