"""API shapes of sampling. What annotators get never names a model, an endpoint or a policy."""

from django.utils import timezone
from rest_framework import serializers

from annotation import selectors as annotation_selectors
from annotation.models import AssignmentStatus
from annotation.serializers import AnnotatorAssignmentSerializer
from rewardmodel.models import TrainingRun

from . import selectors
from .failures import NOT_RETRYABLE
from .models import (
    Backend,
    ChatTemplate,
    GenerationJob,
    JobStatus,
    ModelVariant,
    PairPolicy,
    PairSelection,
    TemperatureMode,
)


class ModelVariantSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)
    response_count = serializers.SerializerMethodField(help_text="Responses sampled or imported with this version.")

    class Meta:
        model = ModelVariant
        fields = [
            "id",
            "name",
            "version",
            "description",
            "backend",
            "checkpoint_path",
            "base_url",
            "api_model",
            "api_key_env",
            "system_prompt",
            "chat_template",
            "max_new_tokens",
            "top_p",
            "base_variant",
            "reward_run",
            "safety_run",
            "best_of_k",
            "is_active",
            "response_count",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    def get_response_count(self, variant: ModelVariant) -> int:
        count = getattr(variant, "n_responses", None)
        return variant.responses.count() if count is None else count


class ModelVariantCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    backend = serializers.ChoiceField(choices=[Backend.TRANSFORMERS, Backend.OPENAI, Backend.BEST_OF_K])
    checkpoint_path = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    base_url = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    api_model = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    api_key_env = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    system_prompt = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    chat_template = serializers.ChoiceField(choices=ChatTemplate.choices, default=ChatTemplate.MODEL)
    max_new_tokens = serializers.IntegerField(min_value=1, default=256)
    top_p = serializers.FloatField(default=0.9)
    base_variant = serializers.PrimaryKeyRelatedField(
        queryset=ModelVariant.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Best of K: the variant whose samples are ranked.",
    )
    reward_run = serializers.PrimaryKeyRelatedField(
        queryset=TrainingRun.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Best of K: the reward model (the helpfulness model when a safety model is given).",
    )
    safety_run = serializers.PrimaryKeyRelatedField(
        queryset=TrainingRun.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Best of K: a safety model for Llama 2's hybrid reward.",
    )
    best_of_k = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=2)


class ModelVariantUpdateSerializer(serializers.Serializer):
    """Any subset; changing a generation setting makes a new version."""

    description = serializers.CharField(required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False)
    backend = serializers.ChoiceField(choices=[Backend.TRANSFORMERS, Backend.OPENAI], required=False)
    checkpoint_path = serializers.CharField(max_length=500, required=False, allow_blank=True)
    base_url = serializers.CharField(max_length=200, required=False, allow_blank=True)
    api_model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    api_key_env = serializers.CharField(max_length=100, required=False, allow_blank=True)
    system_prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    chat_template = serializers.ChoiceField(choices=ChatTemplate.choices, required=False)
    max_new_tokens = serializers.IntegerField(min_value=1, required=False)
    top_p = serializers.FloatField(required=False)


class PolicyVariantSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVariant
        fields = ["id", "name", "version", "backend", "is_active"]


class PairPolicySerializer(serializers.ModelSerializer):
    batch_name = serializers.CharField(source="batch.name", read_only=True)
    variants = PolicyVariantSerializer(many=True, read_only=True)
    updated_by = serializers.CharField(source="updated_by.username", default=None, read_only=True)

    class Meta:
        model = PairPolicy
        fields = [
            "batch",
            "batch_name",
            "variants",
            "temperature_mode",
            "temperatures",
            "max_new_tokens",
            "max_resample_attempts",
            "selection",
            "candidates",
            "reward_run",
            "safety_run",
            "updated_by",
            "updated_at",
        ]
        read_only_fields = fields


class PairPolicyWriteSerializer(serializers.Serializer):
    variants = serializers.ListField(child=serializers.IntegerField(), allow_empty=False)
    temperature_mode = serializers.ChoiceField(choices=TemperatureMode.choices, default=TemperatureMode.SET)
    temperatures = serializers.ListField(child=serializers.FloatField(), allow_empty=False)
    max_new_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    max_resample_attempts = serializers.IntegerField(min_value=0, default=3)
    selection = serializers.ChoiceField(
        choices=PairSelection.choices,
        default=PairSelection.RANDOM,
        help_text="random, or a reward model chooses the pair among `candidates` samples by a rule.",
    )
    candidates = serializers.IntegerField(min_value=3, default=4, help_text="K samples per prompt to choose from.")
    reward_run = serializers.PrimaryKeyRelatedField(
        queryset=TrainingRun.objects.all(), required=False, allow_null=True, default=None
    )
    safety_run = serializers.PrimaryKeyRelatedField(
        queryset=TrainingRun.objects.all(), required=False, allow_null=True, default=None
    )


class FillSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=1)


class PromptSubmitSerializer(serializers.Serializer):
    batch = serializers.IntegerField()
    prompt = serializers.CharField(allow_blank=True, trim_whitespace=False)
    continues = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="The assignment whose dialogue this continues."
    )


class GenerationJobSerializer(serializers.ModelSerializer):
    """A job as researchers see it: with the policy snapshot and the full error."""

    requested_by = serializers.SerializerMethodField()

    class Meta:
        model = GenerationJob
        fields = [
            "id",
            "batch",
            "dialogue",
            "context_length",
            "prompt",
            "requested_by",
            "status",
            "attempts",
            "error_code",
            "error_detail",
            "error_message",
            "policy",
            "seed",
            "comparison",
            "created_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_requested_by(self, job: GenerationJob) -> str | None:
        user = job.requested_by
        if user is None:
            return None
        return user.pseudonym if user.is_annotator else user.username


class AnnotatorJobSerializer(serializers.Serializer):
    """A job as the annotator who wrote the prompt sees it: status, the dialogue, and once it is
    done the pair leased to them (the same shape as the next-pair answer)."""

    id = serializers.IntegerField()
    batch = serializers.IntegerField(source="batch_id")
    status = serializers.CharField()
    ahead = serializers.SerializerMethodField(help_text="Jobs queued before this one.")
    context = serializers.SerializerMethodField()
    message = serializers.CharField(source="error_message")
    error_code = serializers.CharField()
    retryable = serializers.SerializerMethodField()
    assignment = serializers.SerializerMethodField(help_text="The pair to rate, while the lease is live.")
    assignment_id = serializers.SerializerMethodField(help_text="The writer's lease on the pair (to continue from).")
    lease = serializers.SerializerMethodField(help_text="live, rated, expired or none")
    continuation = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()

    def _assignment(self, job: GenerationJob):
        if not hasattr(job, "_writer_assignment"):
            job._writer_assignment = selectors.writer_assignment(job) if job.status == JobStatus.DONE else None
        return job._writer_assignment

    def get_ahead(self, job: GenerationJob) -> int:
        return selectors.jobs_ahead(job)

    def get_context(self, job: GenerationJob) -> list[dict]:
        return selectors.job_context(job)

    def get_retryable(self, job: GenerationJob) -> bool:
        return job.status == JobStatus.FAILED and job.error_code not in NOT_RETRYABLE

    def get_lease(self, job: GenerationJob) -> str:
        assignment = self._assignment(job)
        if assignment is None:
            return "none"
        if assignment.status == AssignmentStatus.SUBMITTED:
            return "rated"
        if assignment.status == AssignmentStatus.LEASED and assignment.expires_at >= timezone.now():
            return "live"
        return "expired"

    def get_assignment_id(self, job: GenerationJob) -> int | None:
        assignment = self._assignment(job)
        return assignment.pk if assignment else None

    def get_assignment(self, job: GenerationJob) -> dict | None:
        if self.get_lease(job) != "live":
            return None
        assignment = self._assignment(job)
        payload = AnnotatorAssignmentSerializer(assignment).data
        payload["ratings_today"] = annotation_selectors.ratings_today_count(assignment.annotator)
        return payload

    def get_continuation(self, job: GenerationJob) -> list[dict] | None:
        if self.get_lease(job) != "rated":
            return None
        return selectors.continuation_for(job)
