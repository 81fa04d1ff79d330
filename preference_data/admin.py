from django.contrib import admin

from .models import DatasetBuild, DatasetExport, ExternalSource, HeldOutThreshold


@admin.register(DatasetBuild)
class DatasetBuildAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "mix", "margin_table", "seed", "status", "progress_done", "created_by", "created_at"]
    list_filter = ["status", "mix", "margin_table"]
    search_fields = ["name"]
    readonly_fields = ["counts", "exclusions", "manifest", "selection"]


@admin.register(DatasetExport)
class DatasetExportAdmin(admin.ModelAdmin):
    list_display = ["id", "build", "format", "file_type", "status", "rows_done", "content_hash", "created_at"]
    list_filter = ["status", "format", "file_type"]
    raw_id_fields = ["build"]
    readonly_fields = ["files", "manifest", "content_hash"]


@admin.register(ExternalSource)
class ExternalSourceAdmin(admin.ModelAdmin):
    list_display = ["name", "focus", "format", "file_type", "row_count", "created_at"]
    list_filter = ["focus", "format"]
    search_fields = ["name"]


@admin.register(HeldOutThreshold)
class HeldOutThresholdAdmin(admin.ModelAdmin):
    list_display = ["batch", "seed", "test_count", "max_fraction", "threshold", "comparisons_seen", "created_at"]
    list_filter = ["batch"]
