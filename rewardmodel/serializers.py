"""API shapes of base checkpoints, training runs, their curves and evaluations, reward scoring and
best-of-K previews. Validation of meaning lives in the services (rewardmodel.services.runs and .rewards)."""

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.models import Focus
from preference_data.models import JobStatus, MarginTable, Split

from .models import BaseCheckpoint, BestOfKPreview, ModelKind, RunEvaluation, RunMetric, TrainingRun


class BaseCheckpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = BaseCheckpoint
        fields = ["id", "name", "path", "kind", "description", "suggested_hyperparameters", "is_active", "created_at"]
        read_only_fields = fields


class BaseCheckpointCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    path = serializers.CharField(max_length=500)
    kind = serializers.ChoiceField(choices=ModelKind.choices)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    suggested_hyperparameters = serializers.DictField(required=False, default=dict)


class EvaluationSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEvaluation
        fields = ["id", "dataset", "split", "status", "n", "accuracy"]
        read_only_fields = fields


class TrainingRunSerializer(serializers.ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    base_checkpoint_name = serializers.CharField(source="base_checkpoint.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    percent = serializers.FloatField(read_only=True)
    stale = serializers.SerializerMethodField(help_text="Running, but its worker stopped sending heartbeats.")
    download_url = serializers.SerializerMethodField()
    evaluations = EvaluationSummarySerializer(many=True, read_only=True)

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "name",
            "kind",
            "dataset",
            "dataset_name",
            "base_checkpoint",
            "base_checkpoint_name",
            "margin_table",
            "hyperparameters",
            "status",
            "percent",
            "step",
            "total_steps",
            "n_train_pairs",
            "n_eval_pairs",
            "loss",
            "accuracy",
            "learning_rate",
            "tokens_per_second",
            "eta_seconds",
            "elapsed_seconds",
            "last_checkpoint_step",
            "output_path",
            "download_url",
            "metrics",
            "evaluations",
            "error",
            "attempts",
            "celery_task_id",
            "worker",
            "heartbeat_at",
            "stale",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_stale(self, run: TrainingRun) -> bool:
        from .selectors import is_stale

        return is_stale(run, settings.PREFLAB_TRAINING_STALE_SECONDS)

    def get_download_url(self, run: TrainingRun) -> str | None:
        if not run.output_path or run.status not in ("succeeded", "cancelled"):
            return None
        path = reverse("training-run-download", kwargs={"pk": run.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class TrainingRunCreateSerializer(serializers.Serializer):
    dataset = serializers.IntegerField(help_text="A finished dataset build: its train split trains, test evaluates.")
    base_checkpoint = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Focus.choices, required=False, allow_null=True, default=None)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    margin_table = serializers.ChoiceField(
        choices=MarginTable.choices, required=False, allow_null=True, default=None, help_text="Default: the dataset's."
    )
    hyperparameters = serializers.DictField(
        required=False,
        default=dict,
        help_text="TrainingConfig fields; the rest: the checkpoint's suggestions, then Llama 2's.",
    )
    idempotency_key = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        default="",
        help_text="Optional. A retry with the same key returns the run the first request created (200).",
    )


class RunMetricSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunMetric
        fields = ["step", "loss", "accuracy", "learning_rate", "grad_norm", "tokens_per_second", "elapsed_seconds"]
        read_only_fields = fields


class RunEvaluationSerializer(serializers.ModelSerializer):
    dataset_name = serializers.CharField(source="dataset.name", read_only=True)
    run_name = serializers.CharField(source="run.name", read_only=True)

    class Meta:
        model = RunEvaluation
        fields = [
            "id",
            "run",
            "run_name",
            "dataset",
            "dataset_name",
            "split",
            "status",
            "n",
            "accuracy",
            "report",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class RunEvaluationCreateSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    dataset = serializers.IntegerField()
    split = serializers.ChoiceField(choices=Split.choices, default=Split.TEST)


class MessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=["system", "user", "assistant"])
    content = serializers.CharField(trim_whitespace=False)


class _DialogueSerializer(serializers.Serializer):
    """The dialogue before the response: ``context`` as messages, or ``dialogue`` as a transcript
    ("User: ..." / "Assistant: ..." lines; plain text is one user turn)."""

    context = MessageSerializer(many=True, required=False)
    dialogue = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)

    def validate(self, attrs):
        from .services.rewards import parse_dialogue

        if not attrs.get("context"):
            attrs["context"] = parse_dialogue(attrs.get("dialogue", ""))
        return attrs


class ScoreSerializer(_DialogueSerializer):
    response = serializers.CharField(trim_whitespace=False)


class ScoreManySerializer(serializers.Serializer):
    items = ScoreSerializer(
        many=True,
        max_length=1000,
        help_text="Up to 1000 {context or dialogue, response} items; the rewards stream back in their order.",
    )


class ScoreManyResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The item's position in the request.")
    reward = serializers.FloatField()
    probability = serializers.FloatField()


class HybridScoreSerializer(ScoreSerializer):
    helpfulness_run = serializers.IntegerField()
    safety_run = serializers.IntegerField()
    is_safety_prompt = serializers.BooleanField(default=False)


class BestOfKSerializer(_DialogueSerializer):
    variant = serializers.IntegerField()
    k = serializers.IntegerField(default=4)
    run = serializers.IntegerField(help_text="The reward model (with safety_run: the helpfulness model).")
    safety_run = serializers.IntegerField(required=False, allow_null=True, default=None)
    is_safety_prompt = serializers.BooleanField(default=False)
    temperature = serializers.FloatField(default=0.6)
    max_new_tokens = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    seed = serializers.IntegerField(required=False, allow_null=True, default=None)


class BestOfKModelRewardSerializer(serializers.Serializer):
    reward = serializers.FloatField(help_text="The scalar head's output.")
    probability = serializers.FloatField(help_text="Its sigmoid.")


class BestOfKCandidateSerializer(serializers.Serializer):
    """One sampled response and its reward. With one model: ``raw_reward``; with the hybrid reward:
    ``used``, ``reason``, ``helpfulness``, ``safety`` and ``threshold``."""

    rank = serializers.IntegerField(help_text="1: the best.")
    index = serializers.IntegerField(help_text="Order of sampling: response i was sampled with seed + i.")
    reward = serializers.FloatField(help_text="What the ranking sorts on: the sigmoid, or the hybrid reward.")
    raw_reward = serializers.FloatField(required=False)
    used = serializers.CharField(required=False, help_text="helpfulness or safety: the model whose reward was taken.")
    reason = serializers.CharField(required=False)
    helpfulness = BestOfKModelRewardSerializer(required=False)
    safety = BestOfKModelRewardSerializer(required=False)
    threshold = serializers.FloatField(required=False)
    text = serializers.CharField()
    seed = serializers.IntegerField()
    completion_tokens = serializers.IntegerField(allow_null=True)
    finish_reason = serializers.CharField(allow_null=True, help_text='"length": cut at max_new_tokens.')


class BestOfKResultSerializer(serializers.Serializer):
    variant = serializers.IntegerField()
    variant_name = serializers.CharField()
    k = serializers.IntegerField()
    temperature = serializers.FloatField()
    seed = serializers.IntegerField()
    ranking = serializers.ChoiceField(choices=["hybrid", *Focus.values])
    candidates = BestOfKCandidateSerializer(many=True, help_text="Best first.")
    sampling_seconds = serializers.FloatField()
    scoring_seconds = serializers.FloatField()


class BestOfKPreviewSerializer(serializers.ModelSerializer):
    """A best-of-K preview: what was asked, where it is (queued, running, done or failed), and once
    done the ranked responses (``result``); ``error`` says why a failed one failed."""

    url = serializers.SerializerMethodField()
    variant_name = serializers.SerializerMethodField()
    run_name = serializers.CharField(source="run.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    context = MessageSerializer(many=True, read_only=True, help_text="The dialogue, ending with the user's turn.")
    result = serializers.SerializerMethodField()

    class Meta:
        model = BestOfKPreview
        fields = [
            "id",
            "url",
            "status",
            "variant",
            "variant_name",
            "run",
            "run_name",
            "safety_run",
            "is_safety_prompt",
            "context",
            "k",
            "temperature",
            "max_new_tokens",
            "seed",
            "result",
            "error",
            "attempts",
            "worker",
            "heartbeat_at",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_url(self, preview: BestOfKPreview) -> str:
        path = reverse("training-run-best-of-k-preview", kwargs={"preview_id": preview.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_variant_name(self, preview: BestOfKPreview) -> str:
        return str(preview.variant)

    @extend_schema_field(BestOfKResultSerializer(allow_null=True))
    def get_result(self, preview: BestOfKPreview) -> dict | None:
        return preview.result if preview.status == JobStatus.DONE else None
