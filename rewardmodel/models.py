"""Comparison datasets for reward-model training: builds, their pairs and exports, and imported
open-source preference data (kept apart from Preflab's own labels).

A `DatasetBuild` is a frozen snapshot: the builder (rewardmodel.services.builds) writes one
`DatasetPair` per pair that went in, with the label, margin and split decided at build time, and
counts every comparison it left out. Exports stream those rows, so every export of a build holds
the same pairs however the labels change later.
"""

from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotation.models import Batch, Comparison, Focus, Response
from core.models import BackgroundWork


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Mix(models.TextChoices):
    NONE = "none", "The selection as it is"
    HELPFULNESS = "helpfulness", "Helpfulness mix (+ equal amount of safety and open-source data)"
    SAFETY = "safety", "Safety mix (safety + harmless-style data, 90/10 with helpfulness)"


class MarginTable(models.TextChoices):
    NONE = "none", "No margin"
    SMALL = "small", "Small (1, 2/3, 1/3, 0)"
    LARGE = "large", "Large (3, 2, 1, 0)"


class HeldOutMode(models.TextChoices):
    COUNT = "count", "A fixed number per batch (capped at a fraction)"
    FRACTION = "fraction", "A fraction of each batch"


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    TEST = "test", "Test (held out)"


class Component(models.TextChoices):
    HELPFULNESS = "helpfulness", "Preflab helpfulness"
    SAFETY = "safety", "Preflab safety"
    EXTERNAL_HELPFULNESS = "external_helpfulness", "Imported helpful-style"
    EXTERNAL_SAFETY = "external_safety", "Imported harmless-style"


class ExternalFormat(models.TextChoices):
    HH_RLHF = "hh_rlhf", "Anthropic HH-RLHF transcripts"
    TRL = "trl", "TRL preference (prompt / chosen / rejected)"


class ExportFormat(models.TextChoices):
    TRL = "trl", "TRL preference (conversational, with margin)"
    HH_RLHF = "hh_rlhf", "HH-RLHF transcripts"
    RATINGS = "ratings", "Raw ratings (one row per annotator rating)"


class FileType(models.TextChoices):
    JSONL = "jsonl", "JSON Lines"
    PARQUET = "parquet", "Parquet"


class ExternalSource(models.Model):
    """An imported open-source preference data set (Anthropic HH-RLHF, a TRL data set, ...)."""

    name = models.CharField(max_length=200, unique=True)
    focus = models.CharField(
        max_length=20,
        choices=Focus.choices,
        help_text="Helpfulness (helpful-style data) or safety (harmless-style data): where mixes put it.",
    )
    format = models.CharField(max_length=20, choices=ExternalFormat.choices)
    file_type = models.CharField(max_length=10, choices=FileType.choices)
    filename = models.CharField(max_length=300, blank=True)
    sha256 = models.CharField(max_length=64, help_text="Of the imported file, to cite it.")
    row_count = models.PositiveIntegerField(default=0)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ExternalComparison(models.Model):
    """One imported pair. Its label is the file's; it never mixes with Preflab's ratings."""

    source = models.ForeignKey(ExternalSource, on_delete=models.CASCADE, related_name="comparisons")
    row = models.PositiveIntegerField(help_text="Line (JSONL) or row (Parquet) in the imported file.")
    context = models.JSONField(help_text="Messages before the responses, ending with the user turn.")
    chosen = models.TextField()
    rejected = models.TextField()
    strength = models.CharField(max_length=30, blank=True, help_text="Empty when the file gave none (margin 0).")
    safety_label = models.CharField(max_length=30, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["source", "row"], name="unique_external_row")]

    def __str__(self) -> str:
        return f"{self.source} row {self.row}"


class DatasetBuild(BackgroundWork):
    """A dataset built from a selection of labels, with a mix, a margin table and held-out test sets."""

    name = models.CharField(max_length=200)
    selection = models.JSONField(default=dict, help_text="Batches, filters and sources, resolved when created.")
    mix = models.CharField(max_length=20, choices=Mix.choices, default=Mix.NONE)
    margin_table = models.CharField(max_length=10, choices=MarginTable.choices, default=MarginTable.SMALL)
    seed = models.BigIntegerField(default=0)
    held_out_mode = models.CharField(max_length=10, choices=HeldOutMode.choices, default=HeldOutMode.COUNT)
    test_count = models.PositiveIntegerField(default=1000)
    test_fraction = models.FloatField(default=0.1, help_text="Fraction mode: the share; count mode: the cap.")
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    exclusions = models.JSONField(default=dict, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
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
        return self.name

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)

    @property
    def percent(self) -> float:
        if self.status == JobStatus.DONE:
            return 100.0
        return round(100 * self.progress_done / self.progress_total, 1) if self.progress_total else 0.0


class HeldOutThreshold(models.Model):
    """A batch's count-mode test threshold, fixed the first time the batch is built with this rule.

    Reusing it is what keeps a comparison on the same side when the batch grows (rewardmodel.pairs).
    """

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="+")
    seed = models.BigIntegerField()
    test_count = models.PositiveIntegerField()
    max_fraction = models.FloatField()
    threshold = models.FloatField()
    comparisons_seen = models.PositiveIntegerField(help_text="Comparisons in the batch when it was fixed.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "seed", "test_count", "max_fraction"], name="unique_held_out_threshold"
            )
        ]

    def __str__(self) -> str:
        return f"{self.batch} seed {self.seed}: test below {self.threshold:.4f}"


class DatasetPair(models.Model):
    """One pair in a build: a Preflab comparison (with its majority label) or an imported pair."""

    build = models.ForeignKey(DatasetBuild, on_delete=models.CASCADE, related_name="pairs", db_index=False)
    split = models.CharField(max_length=5, choices=Split.choices)
    component = models.CharField(max_length=24, choices=Component.choices)
    comparison = models.ForeignKey(Comparison, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    external = models.ForeignKey(ExternalComparison, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    chosen_response = models.ForeignKey(
        Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    rejected_response = models.ForeignKey(
        Response, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    strength = models.CharField(max_length=30, blank=True)
    margin = models.FloatField()
    safety_label = models.CharField(max_length=30, blank=True)
    agreement = models.FloatField(null=True, blank=True, help_text="Share of raters who chose the majority response.")
    n_ratings = models.PositiveSmallIntegerField(null=True, blank=True)
    sample_key = models.FloatField(help_text="unit_hash(seed, mix key): mixes keep the smallest.")

    class Meta:
        ordering = ["id"]
        # Exports read a build in id order; the same index serves every other per-build query.
        indexes = [models.Index(fields=["build", "id"], name="dataset_pair_by_build")]
        constraints = [
            models.CheckConstraint(
                name="dataset_pair_one_origin",
                condition=Q(comparison__isnull=False, external__isnull=True)
                | Q(comparison__isnull=True, external__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"pair {self.pk} of build {self.build_id}"


class DatasetExport(BackgroundWork):
    """A build written out in one format: data files and a manifest under MEDIA_ROOT/exports/<id>/."""

    build = models.ForeignKey(DatasetBuild, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=10, choices=ExportFormat.choices, default=ExportFormat.TRL)
    file_type = models.CharField(max_length=10, choices=FileType.choices, default=FileType.JSONL)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveIntegerField(default=0)
    files = models.JSONField(default=list, blank=True, help_text="[{name, split, rows, bytes, sha256}]")
    content_hash = models.CharField(max_length=64, blank=True)
    manifest = models.JSONField(default=dict, blank=True)
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
        return f"export {self.pk} of {self.build}"

    @property
    def directory(self) -> Path:
        return Path(settings.MEDIA_ROOT) / "exports" / str(self.pk)

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)

    @property
    def percent(self) -> float:
        if self.status == JobStatus.DONE:
            return 100.0
        return round(100 * self.rows_done / self.rows_total, 1) if self.rows_total else 0.0


# --- reward-model training runs (Llama 2, 3.2.2) --------------------------------------------------


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
