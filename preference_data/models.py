"""Comparison datasets for reward-model training: builds, their pairs and exports, and imported
open-source preference data (kept apart from Preflab's own labels).

A `DatasetBuild` is a frozen snapshot: the builder (preference_data.services.builds) writes one
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
    ULTRAFEEDBACK = "ultrafeedback", "UltraFeedback-binarized (prompt, conversations, scores)"


class SourceUsage(models.TextChoices):
    TRAIN = "train", "Training only"
    TEST = "test", "Held-out only (evaluation)"
    SPLIT = "split", "Split into training and held-out (seeded)"


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
    usage = models.CharField(
        max_length=5,
        choices=SourceUsage.choices,
        default=SourceUsage.TRAIN,
        help_text="Where its pairs go in a dataset build: training, the held-out split, or split by a seeded rule.",
    )
    test_fraction = models.FloatField(default=0.0, help_text="With usage 'split': the held-out share of its rows.")
    split_seed = models.BigIntegerField(default=0, help_text="With usage 'split': the seed of the row hash.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "rewardmodel_externalsource"
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
        db_table = "rewardmodel_externalcomparison"
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
        db_table = "rewardmodel_datasetbuild"
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

    Reusing it is what keeps a comparison on the same side when the batch grows (preference_data.rules).
    """

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="+")
    seed = models.BigIntegerField()
    test_count = models.PositiveIntegerField()
    max_fraction = models.FloatField()
    threshold = models.FloatField()
    comparisons_seen = models.PositiveIntegerField(help_text="Comparisons in the batch when it was fixed.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "rewardmodel_heldoutthreshold"
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
        db_table = "rewardmodel_datasetpair"
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
        db_table = "rewardmodel_datasetexport"
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
