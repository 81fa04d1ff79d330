"""DRF permission classes by role."""

from rest_framework.permissions import BasePermission


class IsResearcher(BasePermission):
    message = "Only researchers can do this."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_researcher)


class IsAnnotator(BasePermission):
    message = "Only annotators rate comparisons."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_annotator)


class IsResearcherOrVendorManager(BasePermission):
    message = "Only researchers and vendor managers can see this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.is_researcher or user.is_vendor_manager))


class IsAdmin(BasePermission):
    message = "Only admins can do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.role == "admin" or user.is_superuser))
