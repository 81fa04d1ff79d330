"""API shapes of agreement reports and the per-annotator quality table."""

from rest_framework import serializers

from .models import AgreementReport, AnnotatorQuality
from .reliability import FLAG_LABELS, QUALITY_FIELDS


class AgreementReportSerializer(serializers.ModelSerializer):
    batch_name = serializers.CharField(source="batch.name", default=None, read_only=True)
    vendor_name = serializers.CharField(source="vendor.name", default=None, read_only=True)

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
    focus = serializers.ChoiceField(choices=["", "helpfulness", "safety"], required=False, default="")
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
