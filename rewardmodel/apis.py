"""Reward-model API (researchers only): base checkpoints, training runs (start, follow, cancel,
resume, download), evaluations on held-out splits, scoring with trained models, and best-of-K
previews (queued on the sampling queue, then followed until their ranking is there)."""

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.permissions import IsResearcher
from config.exceptions import InvalidInput
from config.filters import MAX_RECORD_ID
from config.schema import state_errors
from core.routing import id_param
from preference_data.models import DatasetBuild
from sampling import selectors as sampling_selectors

from . import selectors
from .archives import stream_zip
from .models import BaseCheckpoint, RunEvaluation, TrainingRun
from .serializers import (
    BaseCheckpointCreateSerializer,
    BaseCheckpointSerializer,
    BestOfKPreviewSerializer,
    BestOfKSerializer,
    HybridScoreSerializer,
    RunEvaluationCreateSerializer,
    RunEvaluationSerializer,
    RunMetricSerializer,
    ScoreManyResultSerializer,
    ScoreManySerializer,
    ScoreSerializer,
    TrainingRunCreateSerializer,
    TrainingRunSerializer,
)
from .services import rewards, runs
from .streams import json_lines, pair_rewards_response


class _StreamRenderer(BaseRenderer):
    """Lets a client ask for a streamed format by its media type (errors still come back as JSON)."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data, "application/json", renderer_context)


class NDJSONRenderer(_StreamRenderer):
    media_type, format = "application/x-ndjson", "jsonl"


class CSVStreamRenderer(_StreamRenderer):
    media_type, format = "text/csv", "csv"


STREAM_RENDERERS = [NDJSONRenderer, CSVStreamRenderer]


def model_zip_response(run) -> StreamingHttpResponse:
    """The run's saved model as a streamed zip (the optimizer state of a checkpoint left out)."""
    path, name = selectors.model_download(run)
    response = StreamingHttpResponse(stream_zip(path, name, exclude=["optimizer.pt"]), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return response


class BaseCheckpointViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Models that reward models start from: a checkpoint directory on the workers, or embedded:<name>."""

    serializer_class = BaseCheckpointSerializer
    permission_classes = [IsResearcher]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return BaseCheckpoint.objects.none()
        return selectors.base_checkpoints_for(self.request.user)

    @extend_schema(request=BaseCheckpointCreateSerializer, responses={201: BaseCheckpointSerializer})
    @state_errors(409)
    def create(self, request: Request) -> Response:
        data = BaseCheckpointCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        checkpoint = runs.base_checkpoint_create(created_by=request.user, **data.validated_data)
        return Response(BaseCheckpointSerializer(checkpoint).data, status=status.HTTP_201_CREATED)


class TrainingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Reward-model training runs on the training queue, and scoring with the models they produced."""

    serializer_class = TrainingRunSerializer
    permission_classes = [IsResearcher]
    filterset_fields = ["status", "kind", "dataset", "base_checkpoint"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return TrainingRun.objects.none()
        return selectors.runs_for(self.request.user).prefetch_related("evaluations")

    def _run(self, pk) -> object:
        return get_object_or_404(selectors.runs_for(self.request.user), pk=pk)

    def _answer(self, run, code=status.HTTP_200_OK) -> Response:
        run = self.get_queryset().get(pk=run.pk)
        return Response(TrainingRunSerializer(run, context={"request": self.request}).data, status=code)

    @extend_schema(
        request=TrainingRunCreateSerializer, responses={201: TrainingRunSerializer, 200: TrainingRunSerializer}
    )
    def create(self, request: Request) -> Response:
        """Start a run on the training queue. With an idempotency_key, a retried request answers 200 with
        the run the first one created."""
        data = TrainingRunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        fields = {
            "created_by": request.user,
            "dataset": get_object_or_404(DatasetBuild, pk=v["dataset"]),
            "base_checkpoint": get_object_or_404(selectors.base_checkpoints_for(request.user), pk=v["base_checkpoint"]),
            "kind": v["kind"],
            "name": v["name"],
            "margin_table": v["margin_table"],
            "hyperparameters": v["hyperparameters"],
        }
        if not v["idempotency_key"]:
            return self._answer(runs.run_create(**fields), status.HTTP_201_CREATED)
        outcome = runs.run_create_once(idempotency_key=v["idempotency_key"], **fields)
        return self._answer(outcome.run, status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)

    @extend_schema(request=None, responses={202: TrainingRunSerializer})
    @action(detail=True, methods=["post"])
    @state_errors(409)
    def cancel(self, request: Request, pk=None) -> Response:
        """Stop the run before its next micro-batch; its last checkpoint is kept (and can be resumed)."""
        return self._answer(runs.run_cancel(run=self.get_object(), user=request.user), status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: TrainingRunSerializer})
    @action(detail=True, methods=["post"])
    @state_errors(409)
    def resume(self, request: Request, pk=None) -> Response:
        """Queue a cancelled, failed or interrupted run again; it continues from its last checkpoint."""
        return self._answer(runs.run_resume(run=self.get_object(), user=request.user), status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "after",
                {"type": "integer", "minimum": 0, "maximum": MAX_RECORD_ID},
                description="Only steps after this one.",
            )
        ],
        responses={200: RunMetricSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def metrics(self, request: Request, pk=None) -> Response:
        """Loss, accuracy and learning rate of every optimizer step (the curves)."""
        steps = self.get_object().steps.order_by("step")
        after = request.query_params.get("after", "")
        if after:
            if not (after.isascii() and after.isdigit()) or int(after) > MAX_RECORD_ID:
                raise InvalidInput("after is a step number.", field="after")
            steps = steps.filter(step__gt=int(after))
        return Response(RunMetricSerializer(steps, many=True).data)

    @extend_schema(responses={200: OpenApiResponse(description="A zip of the model directory.")})
    @action(detail=True, methods=["get"])
    @state_errors(409, 410)
    def download(self, request: Request, pk=None) -> StreamingHttpResponse:
        """The trained model (or the checkpoint a cancel left) as a zip that `from_pretrained` loads unzipped."""
        return model_zip_response(self.get_object())

    @extend_schema(request=ScoreSerializer, responses={200: OpenApiResponse(description="reward and probability")})
    @action(detail=True, methods=["post"])
    @state_errors(409)
    def score(self, request: Request, pk=None) -> Response:
        """The reward of a response after a dialogue: the raw scalar and its sigmoid."""
        data = ScoreSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        return Response(rewards.reward_score(run=self.get_object(), context=v["context"], response=v["response"]))

    @extend_schema(
        request=ScoreManySerializer,
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                response=ScoreManyResultSerializer,
                description="One JSON object per line, per item in request order: index, reward, probability.",
            )
        },
    )
    @action(detail=True, methods=["post"], url_path="score-many", renderer_classes=[JSONRenderer, *STREAM_RENDERERS])
    def score_many(self, request: Request, pk=None) -> StreamingHttpResponse:
        """Rewards of many dialogue-response items in one request, streamed back as JSON lines while the
        model scores them a chunk at a time. Every item is checked first: a bad one is a 400 naming it."""
        data = ScoreManySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        scored = rewards.reward_score_many(run=self.get_object(), items=data.validated_data["items"])
        return StreamingHttpResponse(json_lines(scored), content_type="application/x-ndjson")

    @extend_schema(request=HybridScoreSerializer, responses={200: OpenApiResponse(description="the hybrid reward")})
    @action(detail=False, methods=["post"], url_path="hybrid-score")
    @state_errors(409)
    def hybrid_score(self, request: Request) -> Response:
        """Llama 2's hybrid reward: the safety model's score for a safety prompt or below 0.15, else the
        helpfulness model's."""
        data = HybridScoreSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        result = rewards.hybrid_score(
            helpfulness_run=self._run(v["helpfulness_run"]),
            safety_run=self._run(v["safety_run"]),
            context=v["context"],
            response=v["response"],
            is_safety_prompt=v["is_safety_prompt"],
        )
        return Response(result)

    @extend_schema(request=BestOfKSerializer, responses={202: BestOfKPreviewSerializer})
    @action(detail=False, methods=["post"], url_path="best-of-k")
    @state_errors(409)
    def best_of_k(self, request: Request) -> Response:
        """Queue a best-of-K preview: a sampling worker samples K responses from a model variant and
        ranks them by reward (hybrid with a safety run). Input that cannot run is refused here (4xx);
        follow the answer's ``url`` until its status is done (``result``) or failed (``error``)."""
        data = BestOfKSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        preview = rewards.best_of_k_preview_create(
            created_by=request.user,
            variant=get_object_or_404(sampling_selectors.variants_for(request.user), pk=v["variant"]),
            context=v["context"],
            k=v["k"],
            run=self._run(v["run"]),
            safety_run=self._run(v["safety_run"]) if v["safety_run"] else None,
            is_safety_prompt=v["is_safety_prompt"],
            temperature=v["temperature"],
            max_new_tokens=v["max_new_tokens"],
            seed=v["seed"],
        )
        return self._preview(preview, status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("preview_id", int, OpenApiParameter.PATH)],
        responses={200: BestOfKPreviewSerializer},
    )
    @action(
        detail=False,
        methods=["get"],
        url_path=f"best-of-k/{id_param('preview_id')}",
        url_name="best-of-k-preview",
    )
    def best_of_k_preview(self, request: Request, preview_id: str) -> Response:
        """A best-of-K preview: queued or running, then done with its ranked responses, or failed."""
        return self._preview(get_object_or_404(selectors.best_of_k_previews_for(request.user), pk=preview_id))

    def _preview(self, preview, code=status.HTTP_200_OK) -> Response:
        data = BestOfKPreviewSerializer(preview, context={"request": self.request}).data
        headers = {"Location": data["url"]} if code == status.HTTP_202_ACCEPTED else None
        return Response(data, status=code, headers=headers)


class RunEvaluationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Accuracy of trained reward models on held-out splits (Llama 2 Tables 7, 8 and 29 layouts)."""

    serializer_class = RunEvaluationSerializer
    permission_classes = [IsResearcher]
    filterset_fields = ["run", "dataset", "split", "status"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return RunEvaluation.objects.none()
        return selectors.evaluations_for(self.request.user)

    @extend_schema(request=RunEvaluationCreateSerializer, responses={202: RunEvaluationSerializer})
    @state_errors(409)
    def create(self, request: Request) -> Response:
        """Evaluate a run's model on a dataset's split (e.g. a safety RM on the helpfulness test set)."""
        data = RunEvaluationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        evaluation = runs.evaluation_create(
            run=get_object_or_404(selectors.runs_for(request.user), pk=v["run"]),
            dataset=get_object_or_404(DatasetBuild, pk=v["dataset"]),
            split=v["split"],
            created_by=request.user,
        )
        evaluation.refresh_from_db()
        return Response(RunEvaluationSerializer(evaluation).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("file_type", str, enum=["jsonl", "csv"], description="jsonl (default) or csv")],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                response=OpenApiTypes.STR, description="One scored pair per line (a JSON object)."
            ),
            (200, "text/csv"): OpenApiResponse(response=OpenApiTypes.STR, description="One scored pair per row."),
        },
    )
    @action(detail=True, methods=["get"], renderer_classes=[JSONRenderer, *STREAM_RENDERERS])
    def pairs(self, request: Request, pk=None) -> StreamingHttpResponse:
        """Every scored pair's two rewards (id, batch, strength, safety label, reward_chosen,
        reward_rejected, correct), so accuracy against another labelling needs no rescoring."""
        evaluation = self.get_object()
        file_type = request.query_params.get("file_type", "jsonl")
        if file_type not in ("jsonl", "csv"):
            raise InvalidInput("file_type is jsonl or csv.", field="file_type")
        return pair_rewards_response(evaluation, selectors.evaluation_pair_rewards(evaluation), file_type)
