from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import User, Vendor
from .tokens import tokens_revoke


@admin.register(Vendor)
class VendorAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "email", "role", "vendor", "is_active"]
    list_filter = ["role", "vendor", "is_active"]
    fieldsets = (*BaseUserAdmin.fieldsets, ("Preflab", {"fields": ("role", "vendor")}))
    add_fieldsets = (*BaseUserAdmin.add_fieldsets, ("Preflab", {"fields": ("role", "vendor")}))
    actions = ["revoke_api_tokens"]

    @admin.action(description="Revoke the selected people's API tokens")
    def revoke_api_tokens(self, request, queryset):
        revoked = tokens_revoke(users=queryset)
        self.message_user(
            request,
            f"Revoked {revoked} API token{'s' if revoked != 1 else ''}; each person gets a new one by logging in.",
        )
