from django.contrib import admin

from .models import AgreementReport, AnnotatorQuality


class AnnotatorQualityInline(admin.TabularInline):
    model = AnnotatorQuality
    extra = 0
    can_delete = False
    raw_id_fields = ["annotator"]
    fields = ["annotator", "n_ratings", "agreement", "gold_accuracy", "left_share", "swap_consistency", "flags"]
    readonly_fields = fields


@admin.register(AgreementReport)
class AgreementReportAdmin(admin.ModelAdmin):
    """Read-only: reports are written by agreement.services on the default queue."""

    list_display = ["id", "scope", "batch", "vendor", "status", "ratings_count", "computed_at"]
    list_filter = ["scope", "status"]
    readonly_fields = [f.name for f in AgreementReport._meta.fields]
    inlines = [AnnotatorQualityInline]

    def has_add_permission(self, request) -> bool:
        return False
