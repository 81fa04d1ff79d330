import json

from django.contrib import admin, messages
from django.http import HttpResponse

from .documents import quiz_document
from .models import (
    Answer,
    Attempt,
    AttemptSection,
    BatchRequirement,
    Criterion,
    Invitation,
    Question,
    Quiz,
    Review,
    Section,
)


class SectionInline(admin.TabularInline):
    model = Section
    extra = 0
    fields = ["position", "key", "title", "time_limit_minutes"]


class CriterionInline(admin.TabularInline):
    model = Criterion
    extra = 0
    fields = ["position", "label", "section_keys", "measure", "op", "threshold", "gate"]


@admin.register(Quiz)
class QuizAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "version", "is_published", "required_for_focus", "max_attempts", "created_at"]
    list_filter = ["is_published", "required_for_focus"]
    search_fields = ["title", "slug"]
    inlines = [SectionInline, CriterionInline]
    actions = ["export_json", "publish", "unpublish"]

    @admin.action(description="Export as JSON (the import format)")
    def export_json(self, request, queryset):
        document = {"quizzes": [quiz_document(q) for q in queryset]}
        response = HttpResponse(json.dumps(document, indent=2, ensure_ascii=False), content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="quizzes.json"'
        return response

    @admin.action(description="Publish (candidates can take them)")
    def publish(self, request, queryset):
        self.message_user(request, f"{queryset.update(is_published=True)} quiz(zes) published.", messages.SUCCESS)

    @admin.action(description="Unpublish")
    def unpublish(self, request, queryset):
        self.message_user(request, f"{queryset.update(is_published=False)} quiz(zes) unpublished.", messages.SUCCESS)


class QuestionInline(admin.StackedInline):
    model = Question
    extra = 0
    fields = ["position", "kind", "text", "content", "key", "scoring", "rubric"]


@admin.register(Section)
class SectionAdmin(admin.ModelAdmin):
    list_display = ["title", "quiz", "position", "time_limit_minutes"]
    list_filter = ["quiz"]
    inlines = [QuestionInline]


@admin.register(Question)
class QuestionAdmin(admin.ModelAdmin):
    list_display = ["id", "section", "position", "kind", "text"]
    list_filter = ["kind", "section__quiz"]
    search_fields = ["text"]
    readonly_fields = ["agreement_rule"]


class AttemptSectionInline(admin.TabularInline):
    model = AttemptSection
    extra = 0
    fields = ["position", "section", "status", "started_at", "deadline", "closed_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(Attempt)
class AttemptAdmin(admin.ModelAdmin):
    list_display = ["id", "quiz", "candidate", "number", "status", "created_at", "finished_at", "granted_by"]
    list_filter = ["status", "quiz"]
    search_fields = ["candidate__username"]
    raw_id_fields = ["candidate", "granted_by"]
    readonly_fields = ["layout", "result"]
    inlines = [AttemptSectionInline]


@admin.register(Answer)
class AnswerAdmin(admin.ModelAdmin):
    list_display = ["id", "attempt", "question", "agreed", "saved_at"]
    list_filter = ["agreed"]
    raw_id_fields = ["attempt", "question"]


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["id", "attempt", "prompt_index", "status", "score", "reviewer", "graded_at"]
    list_filter = ["status", "score"]
    raw_id_fields = ["answer", "attempt", "reviewer"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "vendor", "invited_by", "created_at", "expires_at", "accepted_at", "user"]
    list_filter = ["vendor"]
    search_fields = ["email"]
    raw_id_fields = ["user", "invited_by"]
    readonly_fields = ["token"]


@admin.register(BatchRequirement)
class BatchRequirementAdmin(admin.ModelAdmin):
    list_display = ["batch", "quiz", "created_at"]
    list_filter = ["quiz"]
