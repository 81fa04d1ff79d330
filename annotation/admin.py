from django.contrib import admin

from .models import Assignment, Batch, Comparison, Dialogue, Prompt, Rating, Response, Turn


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["name", "focus", "overlap", "is_open", "week", "prompt_mode", "gold_rate", "repeat_rate"]
    list_filter = ["focus", "is_open", "prompt_mode"]
    search_fields = ["name"]


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ["id", "batch", "text", "used_at"]
    list_filter = ["batch"]
    search_fields = ["text"]


class TurnInline(admin.TabularInline):
    model = Turn
    extra = 0


@admin.register(Dialogue)
class DialogueAdmin(admin.ModelAdmin):
    list_display = ["id", "batch", "created_by", "created_at"]
    list_filter = ["batch"]
    inlines = [TurnInline]


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["id", "variant", "temperature", "created_at"]
    list_filter = ["variant"]
    search_fields = ["text"]


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "batch", "status", "rating_count", "label_choice", "label_strength", "label_vote", "is_gold"]
    list_filter = ["batch", "status", "label_vote", "is_gold"]
    raw_id_fields = ["dialogue", "response_a", "response_b", "repeat_of"]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison", "annotator", "status", "swapped", "expires_at"]
    list_filter = ["status"]
    raw_id_fields = ["comparison", "annotator"]


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ["id", "comparison", "annotator", "chosen", "strength", "safety_label", "created_at"]
    list_filter = ["strength", "safety_label"]
    raw_id_fields = ["assignment", "comparison", "annotator"]
