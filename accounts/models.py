"""People: users with a role, and the vendors that employ annotators."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class Vendor(models.Model):
    """An annotation vendor. Annotators and vendor managers belong to exactly one."""

    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    VENDOR_MANAGER = "vendor_manager", "Vendor manager"
    RESEARCHER = "researcher", "Researcher"
    ADMIN = "admin", "Admin"


class User(AbstractUser):
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    vendor = models.ForeignKey(Vendor, null=True, blank=True, on_delete=models.PROTECT, related_name="members")

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="vendor_staff_have_vendor",
                condition=~models.Q(role__in=["annotator", "vendor_manager"]) | models.Q(vendor__isnull=False),
                violation_error_message="Annotators and vendor managers must belong to a vendor.",
            )
        ]

    @property
    def is_annotator(self) -> bool:
        return self.role == Role.ANNOTATOR

    @property
    def is_vendor_manager(self) -> bool:
        return self.role == Role.VENDOR_MANAGER

    @property
    def is_researcher(self) -> bool:
        """Researchers and admins see everything the ML team sees."""
        return self.role in (Role.RESEARCHER, Role.ADMIN) or self.is_superuser

    @property
    def pseudonym(self) -> str:
        """A stable name for exports and dashboards that does not reveal the person."""
        return f"annotator-{self.pk:05d}"
