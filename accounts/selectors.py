"""Reads of people, scoped so vendors never see other vendors' people."""

from django.db.models import Count, Max, QuerySet

from config.exceptions import NotAllowed

from .models import Role, User, Vendor


def people_for(user: User) -> QuerySet[User]:
    """People the user may see: researchers everyone, vendor managers their own vendor's."""
    people = User.objects.select_related("vendor")
    if user.is_researcher:
        return people
    if user.is_vendor_manager:
        return people.filter(vendor_id=user.vendor_id)
    return people.filter(pk=user.pk)


def annotators_with_rating_totals(*, user: User) -> QuerySet[User]:
    """The annotators the user may see, by vendor and name, each with `n_ratings` and `last_rating`."""
    return (
        people_for(user)
        .filter(role=Role.ANNOTATOR)
        .annotate(n_ratings=Count("ratings"), last_rating=Max("ratings__created_at"))
        .order_by("vendor__name", "username")
    )


def vendors_for(*, user: User) -> QuerySet[Vendor]:
    """Vendors the user may see: researchers all of them, everyone else their own."""
    return Vendor.objects.all() if user.is_researcher else Vendor.objects.filter(pk=user.vendor_id)


def annotators_for(*, user: User) -> QuerySet[User]:
    """The annotators among the people the user may see."""
    return people_for(user).filter(role=Role.ANNOTATOR)


def require_researcher(user: User, *, to: str) -> None:
    """The researcher-only selectors' guard: raise NotAllowed("Only researchers <to>.") for anyone else."""
    if not user.is_researcher:
        raise NotAllowed(f"Only researchers {to}.")
