from django.contrib import admin

from .models import BaseCheckpoint, BestOfKPreview, RunEvaluation, TrainingRun


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
