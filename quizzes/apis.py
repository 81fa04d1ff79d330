"""Quizzes API: thin views that validate input, call one service or selector, and serialize.

Candidates (annotators) take quizzes through /api/quizzes/{id}/start/ and /api/attempts/...;
researchers author, import, export, review and gate; vendor managers invite and follow their own
candidates. What a candidate receives never carries reference answers.
"""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User, Vendor
from accounts.permissions import IsAnnotator, IsResearcher, IsResearcherOrVendorManager
from config.exceptions import InvalidInput, NotFound
from config.schema import state_errors
from core.parsers import FormParser, JSONParser, MultiPartParser
from core.routing import id_param

from . import scoring, selectors, services
from .models import Attempt, BatchRequirement, Invitation, Quiz, Review
from .serializers import (
    AnswerSaveSerializer,
    AttemptSummarySerializer,
    AuthorQuizSerializer,
    BatchRequirementSerializer,
    CandidateAttemptSerializer,
    CandidateQuizSerializer,
    InvitationAcceptedSerializer,
    InvitationAcceptSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    PassRateSerializer,
    PersonReportSerializer,
    QuizDocumentSerializer,
    QuizImportSerializer,
    QuizSettingsSerializer,
    ReviewGradeSerializer,
    ReviewSerializer,
    SavedAnswerSerializer,
    SectionSubmitSerializer,
    candidate_attempt,
    candidate_result,
)


def _schema_only(view) -> bool:
    """drf-spectacular builds the schema with a fake view and no real user."""
    return getattr(view, "swagger_fake_view", False)


# Researchers read a quiz as its authors do; everyone else as a candidate sees it.
QUIZ_AS_SEEN = PolymorphicProxySerializer(
    component_name="QuizAsSeen",
    serializers=[AuthorQuizSerializer, CandidateQuizSerializer],
    resource_type_field_name=None,
)


class QuizViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Researchers see and edit every quiz version; everyone else sees the published quizzes."""

    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        if _schema_only(self):
            return Quiz.objects.none()
        if self.request.user.is_researcher:
            return Quiz.objects.all().order_by("slug", "-version")
        return Quiz.objects.filter(pk__in=[q.pk for q in selectors.published_quizzes()]).order_by("title")

    def get_serializer_class(self):
        if _schema_only(self) or self.request.user.is_researcher:
            return AuthorQuizSerializer
        return CandidateQuizSerializer

    @extend_schema(responses=QUIZ_AS_SEEN)
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=QUIZ_AS_SEEN)
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return super().retrieve(request, *args, **kwargs)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        user = self.request.user
        if not _schema_only(self) and user.is_authenticated and user.is_annotator:
            context["standings"] = {s.quiz.slug: s for s in selectors.candidate_quizzes(user)}
        context["detail"] = self.action == "retrieve"
        return context

    def get_permissions(self):
        if self.action in ("partial_update", "import_quizzes", "export", "llama2_template", "grant"):
            return [IsResearcher()]
        if self.action == "start":
            return [IsAnnotator()]
        return super().get_permissions()

    @extend_schema(request=QuizSettingsSerializer, responses=AuthorQuizSerializer)
    def partial_update(self, request: Request, pk=None) -> Response:
        data = QuizSettingsSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        criteria = {c["id"]: c for c in values.pop("criteria", [])}
        limits = {s["id"]: s["time_limit_minutes"] for s in values.pop("sections", [])}
        quiz = services.quiz_settings_update(
            quiz=self.get_object(), changes=values, criteria=criteria, section_time_limits=limits
        )
        return Response(AuthorQuizSerializer(quiz, context={"detail": True}).data)

    @extend_schema(request=QuizImportSerializer, responses={201: AuthorQuizSerializer(many=True)})
    @action(detail=False, methods=["post"], url_path="import", parser_classes=[JSONParser, MultiPartParser])
    def import_quizzes(self, request: Request) -> Response:
        """Import one quiz or a bundle. Send {"document": ..., "publish": false}, or a file as `file`."""
        upload = request.FILES.get("file")
        if upload is not None:
            document, publish = upload.read(), request.data.get("publish") in ("1", "true", "on", True)
        else:
            data = QuizImportSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            document, publish = data.validated_data["document"], data.validated_data["publish"]
        quizzes = services.quizzes_import(document=document, created_by=request.user, publish=publish)
        return Response(AuthorQuizSerializer(quizzes, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk=None) -> Response:
        """The quiz in the import format, reference answers included, to keep under version control."""
        quiz = self.get_object()
        response = Response(QuizDocumentSerializer(quiz).data)
        response["Content-Disposition"] = f'attachment; filename="{quiz.slug}-v{quiz.version}.json"'
        return response

    @extend_schema(request=None, responses={201: AuthorQuizSerializer(many=True)})
    @action(detail=False, methods=["post"], url_path="llama2-template")
    def llama2_template(self, request: Request) -> Response:
        """Add the four Llama 2 selection tests (unpublished, to review first). Loading again adds new versions."""
        quizzes = services.llama2_template_load(created_by=request.user, publish=False, if_missing=False)
        return Response(AuthorQuizSerializer(quizzes, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={201: CandidateAttemptSerializer, 200: CandidateAttemptSerializer})
    @action(detail=True, methods=["post"])
    @state_errors(409)
    def start(self, request: Request, pk=None) -> Response:
        """Start an attempt (or get back the one in progress)."""
        started = services.attempt_start(candidate=request.user, quiz=get_object_or_404(Quiz, pk=pk))
        code = status.HTTP_201_CREATED if started.created else status.HTTP_200_OK
        return Response(candidate_attempt(started.attempt), status=code)

    @extend_schema(
        request={"application/json": {"type": "object", "properties": {"annotators": {"type": "array"}}}},
        responses={201: AttemptSummarySerializer(many=True)},
    )
    @action(detail=True, methods=["post"])
    def grant(self, request: Request, pk=None) -> Response:
        """Record passes earned outside Preflab for annotators (by id); kept as attempts."""
        quiz = self.get_object()
        ids = request.data.get("annotators")
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise InvalidInput("Send annotators as a list of user ids.", field="annotators")
        note = str(request.data.get("note", ""))
        attempts = [
            services.qualification_grant(quiz=quiz, annotator=annotator, granted_by=request.user, note=note)
            for annotator in User.objects.filter(pk__in=ids)
        ]
        return Response(AttemptSummarySerializer(attempts, many=True).data, status=status.HTTP_201_CREATED)


class AttemptViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Candidates: their own attempts, answered through the actions below. Vendor managers: their
    vendor's candidates' attempts. Researchers: all."""

    serializer_class = AttemptSummarySerializer
    filterset_fields = ["status", "quiz"]

    def get_queryset(self):
        if _schema_only(self):
            return Attempt.objects.none()
        return selectors.attempts_for(self.request.user).order_by("-created_at", "-id")

    def list(self, request: Request) -> Response:
        if request.user.is_researcher or request.user.is_vendor_manager:
            return super().list(request)
        attempts = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(attempts)
        rows = [
            {
                "id": a.pk,
                "quiz": {"id": a.quiz_id, "slug": a.quiz.slug, "title": a.quiz.title},
                "number": a.number,
                "status": a.status,
                "created_at": a.created_at,
                "finished_at": a.finished_at,
                "result": candidate_result(a),
            }
            for a in page
        ]
        return self.get_paginated_response(rows)

    @extend_schema(
        responses={
            200: {
                "anyOf": [
                    {"$ref": "#/components/schemas/CandidateAttempt"},
                    {"$ref": "#/components/schemas/AttemptSummary"},
                ],
                "description": "The candidate's own attempt as they take it; anyone else's as a summary.",
            }
        }
    )
    def retrieve(self, request: Request, pk=None) -> Response:
        attempt = services.attempt_refresh(attempt=self.get_object())
        if attempt.candidate_id == request.user.pk:
            return Response(candidate_attempt(attempt))
        return Response(AttemptSummarySerializer(attempt).data)

    @extend_schema(request=None, responses=CandidateAttemptSerializer)
    @action(detail=True, methods=["post"], url_path="start-section")
    @state_errors(409)
    def start_section(self, request: Request, pk=None) -> Response:
        """Start the next section: its timer starts now."""
        services.section_start(candidate=request.user, attempt_id=int(pk))
        return Response(candidate_attempt(Attempt.objects.select_related("quiz").get(pk=pk)))

    @extend_schema(request=SectionSubmitSerializer, responses=CandidateAttemptSerializer)
    @action(detail=True, methods=["post"], url_path="submit-section")
    @state_errors(409, 410)
    def submit_section(self, request: Request, pk=None) -> Response:
        """Submit the open section. Unanswered questions need confirm_incomplete=true."""
        data = SectionSubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.section_submit(
            candidate=request.user, attempt_id=int(pk), confirm_incomplete=data.validated_data["confirm_incomplete"]
        )
        return Response(candidate_attempt(Attempt.objects.select_related("quiz").get(pk=pk)))

    @extend_schema(
        request=AnswerSaveSerializer,
        responses=SavedAnswerSerializer,
        parameters=[OpenApiParameter("question_id", int, location=OpenApiParameter.PATH)],
    )
    @action(detail=True, methods=["put"], url_path=f"answers/{id_param('question_id')}", parser_classes=[JSONParser])
    @state_errors(409, 410)
    def answer(self, request: Request, pk=None, question_id=None) -> Response:
        """Save the answer to one question of the open section, in the order the candidate sees."""
        data = AnswerSaveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        saved = services.answer_save(
            candidate=request.user,
            attempt_id=int(pk),
            question_id=int(question_id),
            value=data.validated_data["value"],
            seq=data.validated_data["seq"],
        )
        answer = saved.answer
        return Response(
            {
                "question": answer.question_id,
                "answer": scoring.to_display(answer.question.kind, saved.permutation, answer.value),
                "seq": answer.client_seq,
                "saved_at": answer.saved_at,
                "stale": saved.stale,
            }
        )


class ReviewViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The reviewers' queue of written answers (researchers). ?status=graded lists graded ones."""

    serializer_class = ReviewSerializer
    permission_classes = [IsResearcher]

    def get_queryset(self):
        if _schema_only(self):
            return Review.objects.none()
        wanted = self.request.query_params.get("status", "pending")
        if wanted == "pending" and self.action == "list":
            return selectors.review_queue()  # overdue sections are closed by the reconciler, not on read
        reviews = Review.objects.select_related("answer__question__section__quiz", "attempt__candidate", "reviewer")
        if self.action == "list" and wanted in ("graded", "not_needed"):
            reviews = reviews.filter(status=wanted)
        return reviews.order_by("id")

    @extend_schema(request=ReviewGradeSerializer, responses=ReviewSerializer)
    @action(detail=True, methods=["post"])
    def grade(self, request: Request, pk=None) -> Response:
        data = ReviewGradeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        review = services.review_grade(reviewer=request.user, review_id=int(pk), **data.validated_data)
        return Response(ReviewSerializer(review).data)


class InvitationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Vendor managers invite candidates by e-mail (a list, or a CSV file) and see their invitations."""

    serializer_class = InvitationSerializer
    permission_classes = [IsResearcherOrVendorManager]

    def get_queryset(self):
        if _schema_only(self):
            return Invitation.objects.none()
        return selectors.invitations_for(self.request.user)

    def get_permissions(self):
        # By route, not by action: a method the accept route does not answer has no action, and must
        # be told 405 like anywhere else, not 403 for want of a vendor manager's role.
        if "accept" in (getattr(self, "action_map", None) or {}).values():
            return [AllowAny()]
        return super().get_permissions()

    def _vendor(self, request: Request, vendor_id) -> Vendor:
        if vendor_id in (None, ""):
            if request.user.vendor_id is None:
                raise InvalidInput("Say which vendor the candidates are for.", field="vendor")
            vendor_id = request.user.vendor_id
        vendor = selectors.vendors_visible_to(request.user).filter(pk=vendor_id).first()
        if vendor is None:
            raise NotFound(f"Vendor {vendor_id} does not exist or is not yours.", field="vendor")
        return vendor

    @extend_schema(request=InvitationCreateSerializer, responses={201: InvitationSerializer(many=True)})
    def create(self, request: Request) -> Response:
        data = InvitationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitations = services.invitations_create(
            invited_by=request.user,
            vendor=self._vendor(request, data.validated_data.get("vendor")),
            emails=data.validated_data["emails"],
        )
        body = InvitationSerializer(invitations, many=True, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request={
            "multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
        },
        responses={201: InvitationSerializer(many=True)},
    )
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def csv(self, request: Request) -> Response:
        """Invite every address of a CSV file: an "email" column, or the first column."""
        upload = request.FILES.get("file")
        if upload is None:
            raise InvalidInput("Attach the CSV file as the form field 'file'.", field="file")
        invitations = services.invitations_from_csv(
            invited_by=request.user, vendor=self._vendor(request, request.data.get("vendor")), source=upload.read()
        )
        body = InvitationSerializer(invitations, many=True, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=InvitationAcceptSerializer, responses={201: InvitationAcceptedSerializer})
    @action(detail=False, methods=["post"], authentication_classes=[])
    @state_errors(409, 410)
    def accept(self, request: Request) -> Response:
        """Create the invited candidate's account with the token from the link."""
        data = InvitationAcceptSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.invitation_accept(**data.validated_data)
        return Response(
            {"id": user.pk, "username": user.username, "vendor": str(user.vendor)}, status=status.HTTP_201_CREATED
        )


class CandidateViewSet(viewsets.GenericViewSet):
    """Vendor managers' view of their candidates and annotators: quiz results, throughput, quality."""

    permission_classes = [IsResearcherOrVendorManager]
    serializer_class = PersonReportSerializer
    queryset = User.objects.none()  # rows come from selectors.people_report
    pagination_class = None  # one row per person the user may see, as the candidates page shows them

    @extend_schema(
        parameters=[OpenApiParameter("vendor", int, description="Researchers: one vendor only.")],
        responses=PersonReportSerializer(many=True),
    )
    def list(self, request: Request) -> Response:
        _, rows = selectors.people_report(request.user, _vendor_param(request))
        return Response(PersonReportSerializer(rows, many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("vendor", int, description="Researchers: one vendor only.")],
        responses=PassRateSerializer(many=True),
    )
    @action(detail=False, methods=["get"], url_path="pass-rates")
    def pass_rates(self, request: Request) -> Response:
        return Response(selectors.pass_rates(request.user, _vendor_param(request)))


def _vendor_param(request: Request) -> int | None:
    value = request.query_params.get("vendor")
    if not value:
        return None
    if not value.isdigit():
        raise InvalidInput("vendor must be a vendor id.", field="vendor")
    return int(value)


class BatchRequirementViewSet(
    mixins.ListModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Which quizzes a batch requires (researchers). Batches also require quizzes set for their focus."""

    serializer_class = BatchRequirementSerializer
    permission_classes = [IsResearcher]
    filterset_fields = ["batch", "quiz"]
    queryset = BatchRequirement.objects.select_related("quiz", "batch")

    def perform_create(self, serializer) -> None:
        serializer.instance = services.batch_requirement_add(
            batch=serializer.validated_data["batch"], quiz=serializer.validated_data["quiz"]
        )
