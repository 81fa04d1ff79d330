"""Agreement reports and the per-annotator quality rows they hold.

The two tables were created by the annotation app and keep their names (`db_table`): the models
moved here with agreement/migrations/0001_initial.py, which changes Django's state and no table.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from annotation.models import Batch
from core.models import BackgroundWork


class ReportScope(models.TextChoices):
    BATCH = "batch", "Batch"
    BATCH_VENDOR = "batch_vendor", "One vendor's people in a batch"
    FILTER = "filter", "A filter over batches, focus, vendor and weeks"


class ReportStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class AgreementReport(BackgroundWork):
    """Inter-rater agreement and aggregation figures over a set of ratings, computed by a task.

    `metrics` holds what agreement.reliability.measure_agreement returns (coefficients with their
    standard errors, observed and chance agreement, unit counts, the strength distribution and
    Dawid-Skene against majority vote). Batch and batch-vendor reports are recomputed when the
    batch changes; filter reports when someone asks. The per-annotator figures of batch and filter
    reports are AnnotatorQuality rows.
    """

    scope = models.CharField(max_length=20, choices=ReportScope.choices)
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.CASCADE, related_name="agreement_reports")
    vendor = models.ForeignKey("accounts.Vendor", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    filters = models.JSONField(default=dict, blank=True, help_text="The filter of a filter report, canonical form.")
    filter_key = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=ReportStatus.choices, default=ReportStatus.PENDING)
    error = models.TextField(blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    ratings_count = models.PositiveIntegerField(default=0, help_text="Ratings in scope when it was computed.")
    computed_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="How long the computation took.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "annotation_agreementreport"
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["batch"], condition=Q(scope="batch"), name="one_report_per_batch"),
            models.UniqueConstraint(
                fields=["batch", "vendor"], condition=Q(scope="batch_vendor"), name="one_report_per_batch_vendor"
            ),
            models.UniqueConstraint(fields=["filter_key"], condition=Q(scope="filter"), name="one_report_per_filter"),
        ]

    def __str__(self) -> str:
        return f"{self.get_scope_display()} report {self.pk}"


class AnnotatorQuality(models.Model):
    """One annotator's quality figures within a report. Shares come with 95% Wilson intervals."""

    report = models.ForeignKey(AgreementReport, on_delete=models.CASCADE, related_name="annotators")
    # No database constraint on derived rows (here and on ComparisonLabel): checking it at commit takes a
    # share lock on every referenced user or comparison row, which the annotation path locks for update,
    # so a recompute and ratings could deadlock. Deletes still cascade, through the ORM.
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    n_ratings = models.PositiveIntegerField(help_text="Every rating in scope, gold and repeats included.")
    agreement = models.FloatField(null=True, help_text="Share matching the majority choice of the other raters.")
    agreement_low = models.FloatField(null=True)
    agreement_high = models.FloatField(null=True)
    agreement_n = models.PositiveIntegerField(default=0)
    gold_accuracy = models.FloatField(null=True)
    gold_low = models.FloatField(null=True)
    gold_high = models.FloatField(null=True)
    gold_n = models.PositiveIntegerField(default=0)
    left_share = models.FloatField(null=True, help_text="Share of ratings choosing the response shown on the left.")
    left_low = models.FloatField(null=True)
    left_high = models.FloatField(null=True)
    left_distance = models.FloatField(null=True, help_text="|left share - 0.5|.")
    position_significant = models.BooleanField(default=False)
    unsure_share = models.FloatField(null=True, help_text='Share of "negligibly better / unsure".')
    unsure_low = models.FloatField(null=True)
    unsure_high = models.FloatField(null=True)
    median_seconds = models.FloatField(null=True)
    ratings_per_hour = models.FloatField(null=True, help_text="3600 / median seconds per rating.")
    swap_consistency = models.FloatField(null=True, help_text="Share of repeats where the same response was chosen.")
    swap_low = models.FloatField(null=True)
    swap_high = models.FloatField(null=True)
    swap_n = models.PositiveIntegerField(default=0)
    ds_accuracy = models.FloatField(null=True, help_text="Dawid-Skene estimate of the share of correct choices.")
    flags = models.JSONField(default=list, blank=True)
    is_outlier = models.BooleanField(default=False)

    class Meta:
        db_table = "annotation_annotatorquality"
        ordering = ["report_id", "annotator_id"]
        constraints = [
            models.UniqueConstraint(fields=["report", "annotator"], name="one_quality_row_per_annotator"),
        ]

    def __str__(self) -> str:
        return f"quality of {self.annotator_id} in report {self.report_id}"


class ComparisonLabel(models.Model):
    """One comparison's label in a batch or filter report: majority vote and Dawid-Skene.

    Written with the report from the same fit (agreement.reliability.comparison_labels), over the
    regular ratings; read by the labels API and CSV and by the raw-ratings export. `ds_posterior` is
    the posterior probability of `ds_label`, `ds_posterior_a` that of A.
    """

    report = models.ForeignKey(AgreementReport, on_delete=models.CASCADE, related_name="labels")
    comparison = models.ForeignKey(
        "annotation.Comparison", on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    votes_a = models.PositiveIntegerField()
    votes_b = models.PositiveIntegerField()
    majority = models.CharField(max_length=1, blank=True, help_text='"a", "b", or empty when the vote is tied.')
    ds_label = models.CharField(max_length=1, help_text='Dawid-Skene label: "a" or "b".')
    ds_posterior = models.FloatField(help_text="Posterior probability of the Dawid-Skene label.")
    ds_posterior_a = models.FloatField(help_text="Posterior probability that A is the better response.")

    class Meta:
        ordering = ["report_id", "comparison_id"]
        constraints = [
            models.UniqueConstraint(fields=["report", "comparison"], name="one_label_per_comparison_and_report"),
        ]

    def __str__(self) -> str:
        return f"label of comparison {self.comparison_id} in report {self.report_id}"
