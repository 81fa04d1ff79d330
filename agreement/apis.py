"""Agreement API: reports per batch, per vendor in a batch and over a filter, with their tables.

A batch's own report is also answered at /api/batches/{id}/agreement/ (and recomputed at
/api/batches/{id}/agreement/recompute/): those actions stay on annotation.apis.BatchViewSet so
that their URLs do not change.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import IsResearcher, IsResearcherOrVendorManager
from config.exceptions import InvalidInput

from . import reliability, selectors, services
from .models import AgreementReport, ReportScope
from .renderers import CSVRenderer
from .serializers import (
    AgreementReportSerializer,
    AnnotatorHistoryRowSerializer,
    AnnotatorQualitySerializer,
    ComparisonLabelSerializer,
    MetricRowSerializer,
    QueuedSerializer,
    ReportFilterSerializer,
    StrengthRowSerializer,
    TrendRowSerializer,
)

TABLE_RENDERERS = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]


class AgreementReportViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Agreement reports: per batch, per vendor in a batch, and over a filter (POST to ask for one).

    Researchers see all; vendor managers their own vendor's reports and people. The table actions
    (`metrics`, `annotators`, `strengths`, `trend`, `labels`) also answer `?format=csv`.
    """

    serializer_class = AgreementReportSerializer
    queryset = AgreementReport.objects.none()  # for the schema; requests go through get_queryset
    permission_classes = [IsResearcherOrVendorManager]
    filterset_fields = ["scope", "batch", "vendor", "status"]

    def get_queryset(self):
        return selectors.agreement_reports_for(self.request.user).order_by("-requested_at", "-id")

    @extend_schema(request=ReportFilterSerializer, responses={202: AgreementReportSerializer})
    def create(self, request: Request) -> Response:
        """Ask for a report over a filter; it is computed on the default queue (poll its status)."""
        data = ReportFilterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        report = services.agreement_report_request(requested_by=request.user, **data.validated_data)
        report.refresh_from_db()
        return Response(AgreementReportSerializer(report).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=MetricRowSerializer(many=True))
    @action(detail=True, methods=["get"], renderer_classes=TABLE_RENDERERS, pagination_class=None)
    def metrics(self, request: Request, pk=None) -> Response:
        """The coefficients with standard errors and 95% intervals, one row each."""
        report = self.get_object()
        self.csv_filename = f"agreement-report-{report.pk}.csv"
        return Response(reliability.metric_rows(report.metrics))

    @extend_schema(responses=AnnotatorQualitySerializer(many=True))
    @action(detail=True, methods=["get"], renderer_classes=TABLE_RENDERERS, pagination_class=None)
    def annotators(self, request: Request, pk=None) -> Response:
        """Per-annotator quality, limited to the people the caller may see."""
        report = self.get_object()
        self.csv_filename = f"annotator-quality-report-{report.pk}.csv"
        rows = selectors.annotator_quality_for(request.user, report)
        return Response(AnnotatorQualitySerializer(rows, many=True).data)

    @extend_schema(responses=StrengthRowSerializer(many=True))
    @action(detail=True, methods=["get"], renderer_classes=TABLE_RENDERERS, pagination_class=None)
    def strengths(self, request: Request, pk=None) -> Response:
        """How the ratings spread over the signed 8-level scale."""
        report = self.get_object()
        self.csv_filename = f"strengths-report-{report.pk}.csv"
        return Response(reliability.strength_rows(report.metrics))

    @extend_schema(responses=TrendRowSerializer(many=True))
    @action(detail=False, methods=["get"], renderer_classes=TABLE_RENDERERS, pagination_class=None)
    def trend(self, request: Request) -> Response:
        """Agreement per batch over time (vendor managers: their people's), oldest week first."""
        self.csv_filename = "agreement-per-batch.csv"
        return Response(selectors.agreement_trend_rows(request.user))

    @extend_schema(
        parameters=[OpenApiParameter("annotator", int, required=True, description="The annotator's user id.")],
        responses=AnnotatorHistoryRowSerializer(many=True),
    )
    @action(
        detail=False,
        methods=["get"],
        url_path="annotator-history",
        renderer_classes=TABLE_RENDERERS,
        pagination_class=None,
    )
    def annotator_history(self, request: Request) -> Response:
        """One annotator's quality in every batch report, oldest week first (their vendor's managers
        and researchers only)."""
        try:
            annotator_id = int(request.query_params.get("annotator", ""))
        except ValueError:
            raise InvalidInput("Give the annotator's user id as ?annotator=.", field="annotator") from None
        self.csv_filename = f"annotator-{annotator_id}-history.csv"
        rows = list(selectors.annotator_history(request.user, annotator_id))
        return Response(
            [
                {"batch": row.report.batch.name, "week": row.report.batch.week, **data}
                for row, data in zip(rows, AnnotatorQualitySerializer(rows, many=True).data, strict=True)
            ]
        )

    @extend_schema(responses=ComparisonLabelSerializer(many=True))
    @action(
        detail=True,
        methods=["get"],
        renderer_classes=TABLE_RENDERERS,
        pagination_class=None,
        permission_classes=[IsResearcher],
    )
    def labels(self, request: Request, pk=None) -> Response:
        """Each comparison's label: the votes, the majority, and Dawid-Skene's label with its posterior
        (researchers; batch and filter reports)."""
        report = self.get_object()
        self.csv_filename = f"comparison-labels-report-{report.pk}.csv"
        rows = selectors.comparison_labels_for(request.user, report)
        return Response(ComparisonLabelSerializer(rows, many=True).data)

    @extend_schema(request=None, responses={202: QueuedSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsResearcher])
    def recompute(self, request: Request, pk=None) -> Response:
        """Queue the report's recompute: its batch's for batch reports, the filter's otherwise."""
        report = self.get_object()
        if report.scope == ReportScope.FILTER:
            filters = selectors.ReportFilter.from_dict(report.filters)
            services.agreement_report_request(
                requested_by=request.user,
                batches=filters.batches,
                focus=filters.focus,
                vendor=filters.vendor,
                week_from=filters.week_from,
                week_to=filters.week_to,
            )
        else:
            services.agreement_recompute_request(batch_id=report.batch_id, force=True)
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)
