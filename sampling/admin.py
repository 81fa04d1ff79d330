from django import forms
from django.contrib import admin, messages

from config.exceptions import DomainError

from . import services
from .models import GENERATION_FIELDS, GenerationJob, ModelVariant, PairPolicy


class ModelVariantAdminForm(forms.ModelForm):
    base_url = forms.URLField(
        required=False, assume_scheme="http", help_text=ModelVariant._meta.get_field("base_url").help_text
    )

    class Meta:
        model = ModelVariant
        fields = ["name", "description", *GENERATION_FIELDS, "is_active"]

    def clean(self):
        cleaned = super().clean()
        fields = {name: cleaned.get(name, getattr(self.instance, name)) for name in GENERATION_FIELDS}
        for name in ("checkpoint_path", "base_url", "api_model", "api_key_env", "system_prompt"):
            fields[name] = (fields[name] or "").strip()
        name = (cleaned.get("name") or "").strip()
        if self.instance.pk is None and ModelVariant.objects.filter(name=name).exists():
            self.add_error("name", f"A variant named {name!r} exists; edit it to make a new version.")
        try:
            services.variant_validate(fields)
        except DomainError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.detail)
        return cleaned


@admin.register(ModelVariant)
class ModelVariantAdmin(admin.ModelAdmin):
    """Saves go through the services, so that changing generation settings makes a new version
    here too, exactly as on the variants page and through the API."""

    form = ModelVariantAdminForm
    list_display = ["name", "version", "backend", "is_active", "created_at"]
    list_filter = ["backend", "is_active"]
    search_fields = ["name", "description"]
    readonly_fields = ["version", "created_by", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        # A version belongs to its name: a new name is a new variant.
        return [*self.readonly_fields, "name"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        try:
            if not change:
                values = {name: form.cleaned_data[name] for name in GENERATION_FIELDS}
                created = services.variant_create(
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data.get("description", ""),
                    created_by=request.user,
                    **values,
                )
                obj.pk, obj.version = created.pk, created.version
                return
            changes = {
                name: form.cleaned_data[name]
                for name in form.changed_data
                if name in (*GENERATION_FIELDS, "description", "is_active")
            }
            result = services.variant_update(
                variant=ModelVariant.objects.get(pk=obj.pk), updated_by=request.user, **changes
            )
        except DomainError as exc:
            # Refusals the form could not foresee (a newer version appeared meanwhile): say so, keep nothing.
            messages.error(request, exc.detail)
            return
        if result.new_version:
            obj.pk, obj.version = result.variant.pk, result.variant.version
            messages.info(
                request, f"Generation settings changed: saved as {result.variant}; the old version is retired."
            )


class PairPolicyVariantsInline(admin.TabularInline):
    model = PairPolicy.variants.through
    extra = 0


@admin.register(PairPolicy)
class PairPolicyAdmin(admin.ModelAdmin):
    list_display = ["batch", "temperature_mode", "temperatures", "max_new_tokens", "updated_at"]
    readonly_fields = ["updated_by", "updated_at"]
    exclude = ["variants"]
    inlines = [PairPolicyVariantsInline]


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ["id", "batch", "status", "attempts", "error_code", "requested_by", "created_at", "finished_at"]
    list_filter = ["status", "error_code", "batch"]
    readonly_fields = [field.name for field in GenerationJob._meta.fields]
    actions = ["retry"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Try the selected failed jobs again")
    def retry(self, request, queryset):
        retried = 0
        for job in queryset.filter(status="failed"):
            services.job_retry(user=request.user, job_id=job.pk)
            retried += 1
        self.message_user(request, f"{retried} job(s) queued again.")
