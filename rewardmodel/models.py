"""Reward models: base checkpoints, training runs with their curves, evaluations on held-out
splits, and best-of-K previews. The datasets they train on are preference_data's.
"""

from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotation.models import Focus
from core.models import BackgroundWork
from preference_data.models import DatasetBuild, JobStatus, MarginTable, Split


class ModelKind(models.TextChoices):
    ENCODER = "encoder", "Encoder (fast on a CPU)"
    DECODER = "decoder", "Decoder (a chat model, as in Llama 2)"


class BaseCheckpoint(models.Model):
    """A registered model that reward models start from (Llama 2: the chat model's checkpoint).

    ``path`` is a Hugging Face checkpoint directory as the training workers see it, or the name of
    an embedded model (``embedded:...``, rewardmodel.services.runs.EMBEDDED_BASES) that each host
    resolves to its own copy. ``suggested_hyperparameters`` are what the start-run form fills in
    over Llama 2's defaults, e.g. a small batch and window for a model trained on a CPU.
    """

    name = models.CharField(max_length=200, unique=True)
    path = models.CharField(max_length=500, help_text="Checkpoint directory on the workers, or embedded:<name>.")
    kind = models.CharField(max_length=10, choices=ModelKind.choices)
    description = models.TextField(blank=True)
    suggested_hyperparameters = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Training"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class TrainingRun(BackgroundWork):
    """One reward model trained on a dataset's training split and evaluated on its held-out split.

    The row is the job's state: the task claims it by moving it to running (or taking over a
    running one whose heartbeat stopped), so a second delivery of the same run does nothing while
    it trains and resumes it from its last checkpoint after its worker died. Progress is written
    here as it trains; the curves are in `RunMetric`. Checkpoints and the final model live in
    `directory`; ``output_path`` names the one to use (``final``, or ``checkpoint-<step>`` after a
    cancel) relative to it.
    """

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Focus.choices, help_text="Helpfulness RM or safety RM.")
    dataset = models.ForeignKey(DatasetBuild, on_delete=models.PROTECT, related_name="training_runs")
    base_checkpoint = models.ForeignKey(BaseCheckpoint, on_delete=models.PROTECT, related_name="runs")
    margin_table = models.CharField(max_length=10, choices=MarginTable.choices, default=MarginTable.SMALL)
    hyperparameters = models.JSONField(default=dict, help_text="rewardmodel.training.TrainingConfig fields.")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    n_train_pairs = models.PositiveIntegerField(default=0)
    n_eval_pairs = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True, help_text="Of the last optimizer step.")
    accuracy = models.FloatField(null=True, blank=True, help_text="Training accuracy of the last step.")
    learning_rate = models.FloatField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    elapsed_seconds = models.FloatField(null=True, blank=True, help_text="Training time, all attempts.")
    last_checkpoint_step = models.PositiveIntegerField(null=True, blank=True)
    output_path = models.CharField(max_length=100, blank=True, help_text="final or checkpoint-<step>.")
    metrics = models.JSONField(default=dict, blank=True, help_text="The trainer's summary when it stopped.")
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Deliveries that claimed the run.")
    celery_task_id = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    idempotency_key = models.CharField(
        max_length=64,
        null=True,
        blank=True,
        help_text="The client's key for this request: a retry with the same key returns this run.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["heartbeat_at"], name="training_run_active", condition=Q(status__in=["running", "cancelling"])
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="unique_training_run_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def directory(self) -> Path:
        root = settings.PREFLAB_REWARD_MODEL_DIR or Path(settings.MEDIA_ROOT) / "reward-models"
        return Path(root) / f"run-{self.pk}"

    @property
    def model_dir(self) -> Path | None:
        """The saved model to score with or download: the final one, or the checkpoint a cancel left."""
        return self.directory / self.output_path if self.output_path else None

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.CANCELLED, RunStatus.SUCCEEDED, RunStatus.FAILED)

    @property
    def percent(self) -> float:
        if self.status == RunStatus.SUCCEEDED:
            return 100.0
        return round(100 * self.step / self.total_steps, 1) if self.total_steps else 0.0


class RunMetric(models.Model):
    """One optimizer step of a run, for the curves (Llama 2 trains for about 2,800 of them)."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="steps", db_index=False)
    step = models.PositiveIntegerField()
    loss = models.FloatField()
    accuracy = models.FloatField(help_text="Of the step's pairs, before its update.")
    learning_rate = models.FloatField()
    grad_norm = models.FloatField(null=True, blank=True, help_text="Before clipping.")
    tokens_per_second = models.FloatField(null=True, blank=True)
    elapsed_seconds = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["run", "step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="unique_run_metric_step")]

    def __str__(self) -> str:
        return f"step {self.step} of run {self.run_id}"


class RunEvaluation(BackgroundWork):
    """A reward model's accuracy on a dataset's held-out split (rewardmodel.evaluation.evaluation_report).

    Every run that finishes is evaluated on its own dataset's test split; a run can also be evaluated
    on another dataset's, so runs can be compared on the same test set (Llama 2, Table 7).
    """

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="evaluations")
    dataset = models.ForeignKey(DatasetBuild, on_delete=models.CASCADE, related_name="+")
    split = models.CharField(max_length=5, choices=Split.choices, default=Split.TEST)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    n = models.PositiveIntegerField(default=0)
    accuracy = models.FloatField(null=True, blank=True)
    report = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["run", "dataset", "split"], name="unique_run_evaluation")]

    def __str__(self) -> str:
        return f"run {self.run_id} on {self.split} of dataset {self.dataset_id}"

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)

    @property
    def pairs_path(self) -> Path:
        """Every scored pair's two rewards (JSON lines), beside the run's model."""
        return self.run.directory / "evaluations" / f"evaluation-{self.pk}-pairs.jsonl"


class BestOfKPreview(BackgroundWork):
    """A best-of-K preview (Llama 2's rejection sampling, section 3.2.3, for one prompt): sample ``k``
    responses from a model variant and rank them by a reward model, or by the hybrid reward when a
    safety model is given (``run`` is then the helpfulness model).

    Generating is background work on the sampling queue (rewardmodel.services.rewards): the request
    stores what is wanted here, a worker samples and scores, and writes the ranking to ``result``.
    The seed is fixed when the preview is created, so an attempt after a lost worker samples the same.
    """

    variant = models.ForeignKey("sampling.ModelVariant", on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(
        TrainingRun, on_delete=models.CASCADE, related_name="+", help_text="With a safety run: the helpfulness model."
    )
    safety_run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    context = models.JSONField(help_text="Messages before the responses, ending with the user turn.")
    k = models.PositiveSmallIntegerField()
    temperature = models.FloatField()
    max_new_tokens = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: the variant's own.")
    seed = models.BigIntegerField(help_text="Response i is sampled with seed + i.")
    is_safety_prompt = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True, help_text="The ranked responses, best first.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"best-of-{self.k} preview {self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)

    @property
    def prompt(self) -> str:
        """The user turn the responses answer."""
        return self.context[-1]["content"] if self.context else ""


class ResponseReward(models.Model):
    """A trained reward model's score of one stored response (raw scalar head output), kept so the
    variant leaderboard can rank variants by a reward model without loading it on a page."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="response_rewards")
    response = models.ForeignKey("annotation.Response", on_delete=models.CASCADE, related_name="+")
    reward = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "response"]
        constraints = [models.UniqueConstraint(fields=["run", "response"], name="unique_response_reward")]

    def __str__(self) -> str:
        return f"reward of response {self.response_id} by run {self.run_id}"


class ResponseJudging(BackgroundWork):
    """Background work: score the responses of a batch's comparisons (every batch's when ``batch`` is
    empty) with a run's model into `ResponseReward`, for the leaderboard's reward-model ranking.
    Responses already scored by the run are skipped, so a second delivery or a rerun after new
    comparisons only scores what is missing."""

    run = models.ForeignKey(TrainingRun, on_delete=models.CASCADE, related_name="judgings")
    batch = models.ForeignKey("annotation.Batch", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    n_scored = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"judging {self.pk} by run {self.run_id}"

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)
