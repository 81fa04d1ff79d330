"""Reads of people, scoped so vendors never see other vendors' people."""

from django.db.models import QuerySet

from .models import User


def people_for(user: User) -> QuerySet[User]:
    """People the user may see: researchers everyone, vendor managers their own vendor's."""
    people = User.objects.select_related("vendor")
    if user.is_researcher:
        return people
    if user.is_vendor_manager:
        return people.filter(vendor_id=user.vendor_id)
    return people.filter(pk=user.pk)
