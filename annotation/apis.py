"""Annotation API: thin views that validate input, call one service or selector, and serialize."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import IsAnnotator, IsResearcher, IsResearcherOrVendorManager
from agreement import reliability
from agreement import selectors as agreement_selectors
from agreement import services as agreement_services
from agreement.serializers import AgreementReportSerializer, BatchAgreementSerializer, QueuedSerializer
from config.exceptions import InvalidInput, NotFound
from config.schema import state_errors
from core.parsers import FormParser, JSONParser, MultiPartParser

from . import selectors, services
from .models import Assignment, Batch, Rating
from .serializers import (
    AnnotatorAssignmentSerializer,
    BatchCreateSerializer,
    BatchSerializer,
    GoldMarkSerializer,
    GoldPromotedSerializer,
    GoldPromoteSerializer,
    ImportResultSerializer,
    ImportUploadSerializer,
    RatingSerializer,
    RatingSubmitSerializer,
    ResearchComparisonSerializer,
)


def _upload(request: Request) -> dict:
    """The uploaded file's lines and the import's options."""
    if request.FILES.get("file") is None:
        raise InvalidInput("Attach the JSONL file as the form field 'file'.", field="file")
    upload = ImportUploadSerializer(data=request.data)
    upload.is_valid(raise_exception=True)
    return {"source": list(upload.validated_data["file"]), "allow_markup": upload.validated_data["allow_markup"]}


class BatchViewSet(viewsets.ModelViewSet):
    serializer_class = BatchSerializer
    filterset_fields = ["focus", "is_open", "week"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the OpenAPI schema is generated without a user
            return Batch.objects.none()
        return selectors.batches_for(self.request.user)

    def get_permissions(self):
        if self.action in (
            "create",
            "partial_update",
            "import_prompts",
            "import_comparisons",
            "progress",
            "agreement_recompute",
            "promote_gold",
        ):
            return [IsResearcher()]
        if self.action == "next":
            return [IsAnnotator()]
        if self.action == "agreement":
            return [IsResearcherOrVendorManager()]
        return super().get_permissions()

    @extend_schema(responses=BatchAgreementSerializer)
    @action(detail=True, methods=["get"])
    def agreement(self, request: Request, pk=None) -> Response:
        """The batch's stored agreement report (vendor managers: their own people's), and whether
        newer ratings or a queued recompute exist. 404 until the first recompute has run."""
        batch = get_object_or_404(Batch, pk=pk)
        report = agreement_selectors.batch_report_for(request.user, batch)
        if report is None:
            raise NotFound("No agreement report for this batch yet: it is computed once a comparison is complete.")
        return Response(
            {
                "report": AgreementReportSerializer(report).data,
                "freshness": agreement_selectors.report_freshness(report),
                "metrics": reliability.metric_rows(report.metrics),
            }
        )

    @extend_schema(request=None, responses={202: QueuedSerializer})
    @action(detail=True, methods=["post"], url_path="agreement/recompute")
    def agreement_recompute(self, request: Request, pk=None) -> Response:
        """Queue a recompute of the batch's agreement on the default queue now."""
        batch = get_object_or_404(Batch, pk=pk)
        agreement_services.agreement_recompute_request(batch_id=batch.id, force=True)
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=GoldPromoteSerializer, responses=GoldPromotedSerializer)
    @action(detail=True, methods=["post"], url_path="promote-gold")
    def promote_gold(self, request: Request, pk=None) -> Response:
        """Mark complete, unanimous comparisons gold with their label as the answer (clearest first)."""
        data = GoldPromoteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        promoted = services.gold_promote_unanimous(batch=self.get_object(), **data.validated_data)
        return Response({"promoted": promoted})

    @extend_schema(request=BatchCreateSerializer, responses=BatchSerializer)
    @state_errors(409)
    def create(self, request: Request) -> Response:
        data = BatchCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        batch = services.batch_create(created_by=request.user, **data.validated_data)
        return Response(BatchSerializer(batch).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def progress(self, request: Request, pk=None) -> Response:
        return Response(selectors.batch_progress(self.get_object()))

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("exclude", str, description="Comma-separated assignment ids already on screen.")],
        responses={200: AnnotatorAssignmentSerializer, 204: None},
    )
    @action(detail=True, methods=["post"])
    def next(self, request: Request, pk=None) -> Response:
        """Lease the next comparison (or return the one already held). 204 when nothing is left."""
        batch = get_object_or_404(Batch, pk=pk)
        try:
            exclude = frozenset(int(x) for x in request.query_params.get("exclude", "").split(",") if x.strip())
        except ValueError:
            raise InvalidInput("exclude must be a comma-separated list of assignment ids.", field="exclude") from None
        lease = services.assignment_next(annotator=request.user, batch=batch, exclude_ids=exclude)
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        assignment = Assignment.objects.select_related(
            "comparison__batch", "comparison__response_a", "comparison__response_b", "comparison__dialogue"
        ).get(pk=lease.assignment.pk)
        payload = AnnotatorAssignmentSerializer(assignment).data
        payload["ratings_today"] = selectors.ratings_today_count(request.user)
        return Response(payload)

    @extend_schema(
        request={"multipart/form-data": ImportUploadSerializer},
        responses=ImportResultSerializer,
    )
    @action(detail=True, methods=["post"], url_path="import-prompts", parser_classes=[MultiPartParser, FormParser])
    def import_prompts(self, request: Request, pk=None) -> Response:
        count = services.prompts_import(batch=self.get_object(), created_by=request.user, **_upload(request))
        return Response({"imported": count}, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={"multipart/form-data": ImportUploadSerializer},
        responses=ImportResultSerializer,
    )
    @action(detail=True, methods=["post"], url_path="import-comparisons", parser_classes=[MultiPartParser, FormParser])
    def import_comparisons(self, request: Request, pk=None) -> Response:
        count = services.comparisons_import(batch=self.get_object(), created_by=request.user, **_upload(request))
        return Response({"imported": count}, status=status.HTTP_201_CREATED)


class RatingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Annotators submit and list their own ratings; vendor managers their vendor's; researchers all."""

    serializer_class = RatingSerializer
    filterset_fields = {"comparison__batch": ["exact"], "strength": ["exact"]}
    parser_classes = [JSONParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Rating.objects.none()
        return selectors.ratings_for(self.request.user).select_related("comparison", "annotator").order_by("id")

    def get_permissions(self):
        if self.action == "create":
            return [IsAnnotator()]
        return super().get_permissions()

    @extend_schema(request=RatingSubmitSerializer, responses={201: RatingSerializer, 200: RatingSerializer})
    @state_errors(409, 410)
    def create(self, request: Request) -> Response:
        data = RatingSubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        result = services.rating_submit(
            annotator=request.user,
            assignment_id=v["assignment"],
            chosen_response_id=v["chosen_response"],
            strength=v["strength"],
            safety_label=v["safety_label"],
            rationale=v["rationale"],
            seconds_spent=v["seconds_spent"],
            idempotency_key=v["idempotency_key"],
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(RatingSerializer(result.rating).data, status=code)


class ComparisonViewSet(viewsets.ReadOnlyModelViewSet):
    """Comparisons with their responses' variants and majority labels (researchers only)."""

    serializer_class = ResearchComparisonSerializer
    permission_classes = [IsResearcher]
    filterset_fields = ["batch", "status", "label_vote", "label_strength", "label_safety", "is_gold"]

    def get_queryset(self):
        return selectors.comparisons_for_researcher(include_repeats=True)

    @extend_schema(request=GoldMarkSerializer, responses=ResearchComparisonSerializer, methods=["POST"])
    @extend_schema(request=None, responses={200: ResearchComparisonSerializer}, methods=["DELETE"])
    @action(detail=True, methods=["post", "delete"])
    @state_errors(409)
    def gold(self, request: Request, pk=None) -> Response:
        """POST marks the comparison gold with its expected answer; DELETE makes it ordinary again."""
        comparison = self.get_object()
        if request.method == "DELETE":
            services.comparison_gold_unmark(comparison_id=comparison.pk)
        else:
            data = GoldMarkSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            services.comparison_gold_mark(comparison_id=comparison.pk, **data.validated_data)
        return Response(ResearchComparisonSerializer(self.get_queryset().get(pk=comparison.pk)).data)
