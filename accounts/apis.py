"""People API: who am I, and the people a user may see (scoped by vendor)."""

from django.db.models import Count, Max
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import IsResearcherOrVendorManager

from .models import User, Vendor
from .selectors import people_for


class MeSerializer(serializers.ModelSerializer):
    vendor = serializers.StringRelatedField(allow_null=True)

    class Meta:
        model = User
        fields = ["id", "username", "role", "vendor"]


class PersonSerializer(serializers.ModelSerializer):
    vendor = serializers.StringRelatedField(allow_null=True)
    ratings = serializers.IntegerField(source="n_ratings", read_only=True)
    last_rating_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = User
        fields = ["id", "username", "role", "vendor", "ratings", "last_rating_at", "is_active"]


class VendorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Vendor
        fields = ["id", "name"]


@extend_schema(responses=MeSerializer)
@api_view(["GET"])
def me(request: Request) -> Response:
    return Response(MeSerializer(request.user).data)


class PersonViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = PersonSerializer
    permission_classes = [IsResearcherOrVendorManager]
    filterset_fields = ["role", "vendor"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema is generated without a user
            return User.objects.none()
        return (
            people_for(self.request.user)
            .annotate(n_ratings=Count("ratings"), last_rating_at=Max("ratings__created_at"))
            .order_by("username")
        )


class VendorViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = VendorSerializer
    permission_classes = [IsResearcherOrVendorManager]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Vendor.objects.none()
        user = self.request.user
        return Vendor.objects.all() if user.is_researcher else Vendor.objects.filter(pk=user.vendor_id)
