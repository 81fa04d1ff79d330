from django.contrib import admin

from .models import ModelVariant


@admin.register(ModelVariant)
class ModelVariantAdmin(admin.ModelAdmin):
    list_display = ["name", "version", "backend", "is_active", "created_at"]
    list_filter = ["backend", "is_active"]
    search_fields = ["name", "description"]
