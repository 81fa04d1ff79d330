"""API shapes of agreement reports and the per-annotator quality table."""

from rest_framework import serializers

from annotation.models import Focus

from .models import AgreementReport, AnnotatorQuality, ComparisonLabel
from .reliability import FLAG_LABELS, QUALITY_FIELDS


class AgreementReportSerializer(serializers.ModelSerializer):
    batch_name = serializers.CharField(source="batch.name", default=None, read_only=True, allow_null=True)
    vendor_name = serializers.CharField(source="vendor.name", default=None, read_only=True, allow_null=True)

    class Meta:
        model = AgreementReport
        fields = [
            "id",
            "scope",
            "batch",
            "batch_name",
            "vendor",
            "vendor_name",
            "filters",
            "status",
            "error",
            "metrics",
            "ratings_count",
            "computed_at",
            "seconds",
            "requested_at",
        ]


class ReportFilterSerializer(serializers.Serializer):
    batches = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    focus = serializers.ChoiceField(choices=Focus.choices, required=False, allow_blank=True, default="")
    vendor = serializers.IntegerField(required=False, allow_null=True, default=None)
    week_from = serializers.DateField(required=False, allow_null=True, default=None)
    week_to = serializers.DateField(required=False, allow_null=True, default=None)


class AnnotatorQualitySerializer(serializers.ModelSerializer):
    """One row of the per-annotator table (also its CSV). Flags come as codes and as words."""

    annotator = serializers.CharField(source="annotator.pseudonym")
    annotator_id = serializers.IntegerField()
    username = serializers.CharField(source="annotator.username")
    vendor = serializers.CharField(source="annotator.vendor.name", default="")
    flag_text = serializers.SerializerMethodField()

    class Meta:
        model = AnnotatorQuality
        fields = ["annotator", "annotator_id", "username", "vendor", *QUALITY_FIELDS, "flag_text"]

    def get_flag_text(self, row: AnnotatorQuality) -> str:
        return "; ".join(FLAG_LABELS.get(flag, flag) for flag in row.flags)


class MetricRowSerializer(serializers.Serializer):
    """One coefficient of a report's table (reliability.metric_rows), also a CSV row."""

    measure = serializers.CharField()
    measure_label = serializers.CharField()
    statistic = serializers.CharField()
    label = serializers.CharField()
    coefficient = serializers.FloatField(allow_null=True)
    standard_error = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    observed = serializers.FloatField(allow_null=True)
    chance = serializers.FloatField(allow_null=True)
    n_units = serializers.IntegerField(allow_null=True)
    n_raters = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True, allow_null=True)


class StrengthRowSerializer(serializers.Serializer):
    """How many ratings fell on one level of the signed 8-level scale (reliability.strength_rows)."""

    value = serializers.IntegerField()
    label = serializers.CharField()
    count = serializers.IntegerField()
    share = serializers.FloatField()


class TrendRowSerializer(serializers.Serializer):
    """One stored batch report's headline figures (selectors.agreement_trend_rows)."""

    report = serializers.IntegerField()
    batch = serializers.IntegerField()
    batch_name = serializers.CharField()
    focus = serializers.CharField()
    week = serializers.DateField()
    vendor = serializers.CharField(allow_blank=True)
    ratings = serializers.IntegerField()
    comparisons = serializers.IntegerField(allow_null=True)
    scale_ac2 = serializers.FloatField(allow_null=True)
    scale_ac2_se = serializers.FloatField(allow_null=True)
    choice_ac1 = serializers.FloatField(allow_null=True)
    choice_ac1_se = serializers.FloatField(allow_null=True)
    scale_alpha_ordinal = serializers.FloatField(allow_null=True)
    scale_alpha_ordinal_se = serializers.FloatField(allow_null=True)
    safety_ac1 = serializers.FloatField(allow_null=True)
    safety_ac1_se = serializers.FloatField(allow_null=True)
    computed_at = serializers.DateTimeField(allow_null=True)


class AnnotatorHistoryRowSerializer(AnnotatorQualitySerializer):
    """One annotator's quality in one batch report, with the batch's name and week."""

    batch = serializers.CharField()
    week = serializers.DateField()

    class Meta(AnnotatorQualitySerializer.Meta):
        fields = ["batch", "week", *AnnotatorQualitySerializer.Meta.fields]


class BatchAgreementSerializer(serializers.Serializer):
    """A batch's stored report, how fresh it is, and its coefficients table."""

    report = AgreementReportSerializer()
    freshness = serializers.DictField(help_text="Whether newer ratings or a queued recompute exist.")
    metrics = MetricRowSerializer(many=True)


class QueuedSerializer(serializers.Serializer):
    queued = serializers.BooleanField()


class ComparisonLabelSerializer(serializers.ModelSerializer):
    comparison = serializers.IntegerField(source="comparison_id")

    class Meta:
        model = ComparisonLabel
        fields = ["comparison", "votes_a", "votes_b", "majority", "ds_label", "ds_posterior", "ds_posterior_a"]
