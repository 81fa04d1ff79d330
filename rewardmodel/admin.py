from django.contrib import admin

from .models import (
    BaseCheckpoint,
    BestOfKPreview,
    DatasetBuild,
    DatasetExport,
    ExternalSource,
    HeldOutThreshold,
    RunEvaluation,
    TrainingRun,
)


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


@admin.register(BaseCheckpoint)
class BaseCheckpointAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "path", "is_active", "created_at"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "path"]


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "kind", "status", "step", "total_steps", "attempts", "worker", "heartbeat_at"]
    list_filter = ["status", "kind"]
    search_fields = ["name"]
    raw_id_fields = ["dataset"]
    readonly_fields = ["hyperparameters", "metrics", "celery_task_id", "worker", "heartbeat_at", "attempts"]


@admin.register(RunEvaluation)
class RunEvaluationAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "dataset", "split", "status", "n", "accuracy", "finished_at"]
    list_filter = ["status", "split"]
    raw_id_fields = ["run", "dataset"]
    readonly_fields = ["report"]


@admin.register(BestOfKPreview)
class BestOfKPreviewAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "variant",
        "run",
        "safety_run",
        "k",
        "status",
        "attempts",
        "worker",
        "created_by",
        "created_at",
    ]
    list_filter = ["status"]
    raw_id_fields = ["variant", "run", "safety_run", "created_by"]
    readonly_fields = ["context", "result", "attempts", "worker", "heartbeat_at", "dispatched_at", "dispatch_count"]
