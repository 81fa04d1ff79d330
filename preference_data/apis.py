"""Dataset API (researchers only): builds, exports and their files, imports of open-source data."""

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import IsResearcher
from config.schema import state_errors
from core.parsers import FormParser, MultiPartParser

from . import selectors, services
from .models import DatasetBuild, DatasetExport, ExternalSource
from .serializers import (
    DatasetBuildCreateSerializer,
    DatasetBuildSerializer,
    DatasetExportCreateSerializer,
    DatasetExportSerializer,
    ExternalSourceImportSerializer,
    ExternalSourceSerializer,
)


class DatasetBuildViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Comparison datasets: a selection of labels with a mix, a margin table and held-out test sets."""

    serializer_class = DatasetBuildSerializer
    permission_classes = [IsResearcher]
    filterset_fields = ["status", "mix"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema is generated without a user
            return DatasetBuild.objects.none()
        return selectors.builds_for(self.request.user)

    @extend_schema(request=DatasetBuildCreateSerializer, responses={201: DatasetBuildSerializer})
    def create(self, request: Request) -> Response:
        data = DatasetBuildCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        build = services.dataset_build_create(
            created_by=request.user,
            name=v["name"],
            batch_ids=v["batches"],
            focus=v["focus"],
            weeks=v["weeks"],
            vendor_ids=v["vendors"],
            min_agreement=v["min_agreement"],
            unanimous_only=v["unanimous_only"],
            pair_selections=v["pair_selections"],
            label_source=v["label_source"],
            min_posterior=v["min_posterior"],
            exclude_annotator_ids=v["exclude_annotators"],
            external_source_ids=v["external_sources"],
            mix=v["mix"],
            margin_table=v["margin_table"],
            seed=v["seed"],
            held_out_mode=v["held_out_mode"],
            test_count=v["test_count"],
            test_fraction=v["test_fraction"],
        )
        build.refresh_from_db()  # in-process tasks have already run it
        return Response(DatasetBuildSerializer(build).data, status=status.HTTP_201_CREATED)


class DatasetExportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Exports of finished builds (TRL, HH-RLHF, raw ratings; JSONL or Parquet) and their files."""

    serializer_class = DatasetExportSerializer
    permission_classes = [IsResearcher]
    filterset_fields = ["build", "status", "format", "file_type"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return DatasetExport.objects.none()
        return selectors.exports_for(self.request.user)

    @extend_schema(request=DatasetExportCreateSerializer, responses={201: DatasetExportSerializer})
    @state_errors(409)
    def create(self, request: Request) -> Response:
        data = DatasetExportCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        build = get_object_or_404(selectors.builds_for(request.user), pk=v["build"])
        export = services.dataset_export_create(
            created_by=request.user, build=build, format=v["format"], file_type=v["file_type"]
        )
        export.refresh_from_db()
        return Response(DatasetExportSerializer(export, context={"request": request}).data, status=201)

    @extend_schema(responses={200: OpenApiResponse(description="The file's bytes.")})
    @action(detail=True, methods=["get"], url_path=r"files/(?P<name>[A-Za-z0-9_.\-]+)", url_name="file")
    @state_errors(409, 410)
    def file(self, request: Request, pk=None, name: str = "") -> FileResponse:
        """Download a data file or the manifest of a finished export."""
        path = selectors.export_file_path(self.get_object(), name)
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)


class ExternalSourceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Imported open-source preference data (HH-RLHF or TRL style, JSONL or Parquet)."""

    serializer_class = ExternalSourceSerializer
    permission_classes = [IsResearcher]
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ExternalSource.objects.none()
        return selectors.external_sources_for(self.request.user)

    @extend_schema(
        request={"multipart/form-data": ExternalSourceImportSerializer}, responses={201: ExternalSourceSerializer}
    )
    @state_errors(409)
    def create(self, request: Request) -> Response:
        data = ExternalSourceImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        source = services.external_source_import(
            name=v["name"],
            focus=v["focus"],
            format=v["format"],
            description=v["description"],
            usage=v["usage"],
            test_fraction=v["test_fraction"],
            split_seed=v["split_seed"],
            source=v["file"],
            filename=v["file"].name,
            created_by=request.user,
        )
        return Response(ExternalSourceSerializer(source).data, status=status.HTTP_201_CREATED)
