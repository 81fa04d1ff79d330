from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import User, Vendor


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
