"""Sampling API: model variants, pair policies (researchers) and generation jobs (annotators poll
their own). Thin views: validate, call one service or selector, serialize."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import IsAnnotator, IsResearcher
from annotation.models import Batch
from config.exceptions import InvalidInput
from config.schema import state_errors

from . import selectors, services
from .models import GenerationJob, ModelVariant, PairPolicy
from .serializers import (
    AnnotatorJobSerializer,
    FillSerializer,
    GenerationJobSerializer,
    ModelVariantCreateSerializer,
    ModelVariantSerializer,
    ModelVariantUpdateSerializer,
    PairPolicySerializer,
    PairPolicyWriteSerializer,
    PromptSubmitSerializer,
)


def _schema_only(view) -> bool:
    """drf-spectacular builds the schema with a fake view and no real user."""
    return getattr(view, "swagger_fake_view", False)


class ModelVariantViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Model variants and their versions. PATCH with new generation settings makes a new version
    (answered 201 with it); description and `is_active` change in place (200)."""

    serializer_class = ModelVariantSerializer
    permission_classes = [IsResearcher]
    filterset_fields = ["name", "backend", "is_active"]

    def get_queryset(self):
        if _schema_only(self):
            return ModelVariant.objects.none()
        return selectors.variants_for(self.request.user).order_by("name", "-version")

    @extend_schema(request=ModelVariantCreateSerializer, responses={201: ModelVariantSerializer})
    @state_errors(409)
    def create(self, request: Request) -> Response:
        data = ModelVariantCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        variant = services.variant_create(created_by=request.user, **data.validated_data)
        return Response(ModelVariantSerializer(variant).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ModelVariantUpdateSerializer, responses={200: ModelVariantSerializer})
    @state_errors(409)
    def partial_update(self, request: Request, pk=None) -> Response:
        data = ModelVariantUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        change = services.variant_update(variant=self.get_object(), updated_by=request.user, **data.validated_data)
        variant = self.get_queryset().get(pk=change.variant.pk)
        code = status.HTTP_201_CREATED if change.new_version else status.HTTP_200_OK
        return Response(ModelVariantSerializer(variant).data, status=code)


class PairPolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Each batch's pair policy, addressed by batch id: PUT sets it, `fill` samples pairs for the
    batch's prompt pool ahead of time."""

    serializer_class = PairPolicySerializer
    permission_classes = [IsResearcher]
    lookup_field = "batch"

    def get_queryset(self):
        if _schema_only(self):
            return PairPolicy.objects.none()
        return selectors.policies_for(self.request.user)

    @extend_schema(request=PairPolicyWriteSerializer, responses={200: PairPolicySerializer})
    def update(self, request: Request, batch=None) -> Response:
        data = PairPolicyWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        policy = services.pair_policy_set(
            batch=get_object_or_404(Batch, pk=batch),
            variant_ids=values["variants"],
            temperature_mode=values["temperature_mode"],
            temperatures=values["temperatures"],
            max_new_tokens=values["max_new_tokens"],
            max_resample_attempts=values["max_resample_attempts"],
            selection=values["selection"],
            candidates=values["candidates"],
            reward_run=values["reward_run"],
            safety_run=values["safety_run"],
            updated_by=request.user,
        )
        return Response(PairPolicySerializer(self.get_queryset().get(pk=policy.pk)).data)

    @extend_schema(request=FillSerializer, responses={202: GenerationJobSerializer(many=True)})
    @action(detail=True, methods=["post"])
    @state_errors(409)
    def fill(self, request: Request, batch=None) -> Response:
        """Queue pairs for prompts of the batch's pool that have none yet."""
        data = FillSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        jobs = services.batch_fill_from_pool(
            batch=get_object_or_404(Batch, pk=batch), count=data.validated_data["count"], requested_by=request.user
        )
        return Response(GenerationJobSerializer(jobs, many=True).data, status=status.HTTP_202_ACCEPTED)


class GenerationJobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Sampling jobs. Annotators create one by submitting a prompt (or the next turn of their
    dialogue) and poll it until the pair is ready; they see their own jobs without model names.
    Researchers see every job with its policy snapshot and full error."""

    filterset_fields = ["batch", "status", "error_code"]

    def get_queryset(self):
        if _schema_only(self):
            return GenerationJob.objects.none()
        return selectors.jobs_for(self.request.user).order_by("-id")

    def get_serializer_class(self):
        if _schema_only(self) or self.request.user.is_researcher:
            return GenerationJobSerializer
        return AnnotatorJobSerializer

    def get_permissions(self):
        if self.action in ("create", "current"):
            return [IsAnnotator()]
        return super().get_permissions()

    @extend_schema(request=PromptSubmitSerializer, responses={202: AnnotatorJobSerializer})
    @state_errors(409)
    def create(self, request: Request) -> Response:
        """Submit a prompt (or, with `continues`, the next user turn after rating that pair)."""
        data = PromptSubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values["continues"] is not None:
            job = services.dialogue_continue(
                annotator=request.user, assignment_id=values["continues"], text=values["prompt"]
            )
        else:
            batch = get_object_or_404(Batch, pk=values["batch"])
            job = services.prompt_submit(annotator=request.user, batch=batch, text=values["prompt"])
        job.refresh_from_db()
        return Response(AnnotatorJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: AnnotatorJobSerializer})
    @action(detail=True, methods=["post"])
    @state_errors(409)
    def retry(self, request: Request, pk=None) -> Response:
        """Queue a failed job again (the annotator who asked for it, or a researcher)."""
        job = services.job_retry(user=request.user, job_id=self.get_object().pk)
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("batch", int, required=True)],
        responses={200: AnnotatorJobSerializer, 204: None},
    )
    @action(detail=False, methods=["get"])
    def current(self, request: Request) -> Response:
        """The annotator's job in this batch that the rating page should resume, if any. Asking also
        starts loading the batch's local models, so the first prompt does not wait for them."""
        try:
            batch = get_object_or_404(Batch, pk=int(request.query_params.get("batch", "")))
        except ValueError:
            raise InvalidInput("Give the batch id as ?batch=.", field="batch") from None
        services.sampling_warm_up(batch=batch)  # the annotator is about to write a prompt
        job = selectors.job_current_for(request.user, batch)
        if job is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(AnnotatorJobSerializer(job).data)
