"""Model variants (named, versioned models whose responses annotators compare), the pair policy of
each batch, and the generation jobs that sample its pairs."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import BackgroundWork


class Backend(models.TextChoices):
    TRANSFORMERS = "transformers", "Local checkpoint (transformers)"
    OPENAI = "openai", "OpenAI-compatible endpoint"
    EXTERNAL = "external", "Imported responses (not sampled by Preflab)"
    BEST_OF_K = "best_of_k", "Best of K samples of another variant, by a reward model"


class ChatTemplate(models.TextChoices):
    MODEL = "model", "The model's own chat template"
    LLAMA2 = "llama2", "Llama 2 template"


class ModelVariant(models.Model):
    """A model that produces responses. Annotators never see its name."""

    name = models.CharField(max_length=120)
    version = models.PositiveIntegerField(default=1)
    description = models.TextField(blank=True)
    backend = models.CharField(max_length=20, choices=Backend.choices, default=Backend.TRANSFORMERS)
    checkpoint_path = models.CharField(
        max_length=500, blank=True, help_text="Local checkpoint directory or GGUF file (transformers backend)."
    )
    base_url = models.URLField(blank=True, help_text="OpenAI-compatible server, e.g. http://gpu-1:8000/v1")
    api_model = models.CharField(max_length=200, blank=True, help_text="Model name the endpoint expects.")
    api_key_env = models.CharField(
        max_length=100, blank=True, help_text="Name of the environment variable that holds the API key."
    )
    system_prompt = models.TextField(blank=True)
    chat_template = models.CharField(max_length=20, choices=ChatTemplate.choices, default=ChatTemplate.MODEL)
    max_new_tokens = models.PositiveIntegerField(default=256)
    top_p = models.FloatField(default=0.9)
    # Rejection sampling (Llama 2, 3.2.3) as a variant of its own: sample `best_of_k` responses from
    # `base_variant` (its prompt, template and decoding settings, at the pair's temperature), score
    # them with `reward_run` (the hybrid reward with `safety_run` when given) and answer the best.
    base_variant = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="best_of_k_variants"
    )
    reward_run = models.ForeignKey(
        "rewardmodel.TrainingRun",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Best of K: the reward model (the helpfulness model when a safety model is given).",
    )
    safety_run = models.ForeignKey(
        "rewardmodel.TrainingRun",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Best of K: a safety model, for Llama 2's hybrid reward.",
    )
    best_of_k = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Best of K: samples per response.")
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="unique_variant_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


# The fields that decide what a variant generates: changing one makes a new version, so every
# stored response keeps pointing at the settings that produced it.
GENERATION_FIELDS = (
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
)
SAMPLED_BACKENDS = (Backend.TRANSFORMERS, Backend.OPENAI, Backend.BEST_OF_K)


class TemperatureMode(models.TextChoices):
    SET = "set", "Two different values from a set"
    RANGE = "range", "Two different values drawn from a range"


class PairSelection(models.TextChoices):
    """How the two responses of a pair are chosen (sampling.pair_rules)."""

    RANDOM = "random", "Two random draws"
    UNCERTAIN = "uncertain", "Reward model: most uncertain pair (smallest reward gap)"
    BEST_WORST = "best_worst", "Reward model: best against worst"
    DISAGREE = "disagree", "Reward models: helpfulness and safety disagree"


class PairPolicy(models.Model):
    """How a batch's pairs are sampled: which variants are eligible and which temperatures.

    Each pair takes two different eligible variants (the same one twice only when a single one is
    eligible) and two different temperatures. A snapshot of the policy is stored with every
    generation job and every response, so an export can tell how each response was made.
    """

    batch = models.OneToOneField("annotation.Batch", on_delete=models.CASCADE, related_name="pair_policy")
    variants = models.ManyToManyField(ModelVariant, related_name="pair_policies")
    temperature_mode = models.CharField(max_length=10, choices=TemperatureMode.choices, default=TemperatureMode.SET)
    temperatures = models.JSONField(
        default=list, help_text="The set of temperatures, or [lowest, highest] for a range."
    )
    max_new_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Overrides the variants' own max new tokens when set."
    )
    max_resample_attempts = models.PositiveSmallIntegerField(
        default=3, help_text="Times a response is sampled again when both texts of a pair are identical."
    )
    # Active learning: sample `candidates` responses per prompt, score them with the reward model(s)
    # and let the rule pick the pair (see sampling.pair_rules).
    selection = models.CharField(max_length=20, choices=PairSelection.choices, default=PairSelection.RANDOM)
    candidates = models.PositiveSmallIntegerField(
        default=4, help_text="K: responses sampled per prompt when a reward model chooses the pair."
    )
    reward_run = models.ForeignKey(
        "rewardmodel.TrainingRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The reward model that scores the candidates (the helpfulness model for 'disagree').",
    )
    safety_run = models.ForeignKey(
        "rewardmodel.TrainingRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="A safety model: the hybrid reward, and the second opinion of 'disagree'.",
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "pair policies"

    def __str__(self) -> str:
        return f"pair policy of {self.batch}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Sampling"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class FailureCode(models.TextChoices):
    ENDPOINT_DOWN = "endpoint_down", "A model endpoint is not answering"
    ENDPOINT_REFUSED = "endpoint_refused", "A model endpoint refused the request"
    BAD_RESPONSE = "bad_response", "A model endpoint answered something that is not a completion"
    MODEL_MISSING = "model_missing", "A local model is missing or cannot be loaded"
    PROMPT_REJECTED = "prompt_rejected", "The prompt contains chat-template control tags"
    TOO_LONG = "too_long", "The dialogue does not fit the model's context"
    IDENTICAL = "identical", "Both responses stayed identical"
    INTERRUPTED = "interrupted", "The worker stopped while sampling"
    NO_VARIANTS = "no_variants", "No model variant can sample this pair"
    QUEUE_DOWN = "queue_down", "The sampling queue could not be reached"
    INTERNAL = "internal", "Unexpected error"


class GenerationJob(BackgroundWork):
    """One pair to sample for a dialogue at its last user turn, and what became of it.

    Tasks carry job ids; the job row makes a second delivery harmless (a job that is done is
    skipped) and holds the error a person can act on when it failed. `attempts` counts the runs
    that claimed it and doubles as the claim: a run writes its result only while the job is still
    running under its own attempt number.
    """

    batch = models.ForeignKey("annotation.Batch", on_delete=models.CASCADE, related_name="generation_jobs")
    dialogue = models.ForeignKey("annotation.Dialogue", on_delete=models.CASCADE, related_name="generation_jobs")
    context_length = models.PositiveIntegerField(help_text="Turns of the dialogue the pair answers.")
    prompt = models.ForeignKey(
        "annotation.Prompt", null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_jobs"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_jobs"
    )
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    policy = models.JSONField(default=dict, help_text="The pair policy as it was when the job was queued.")
    seed = models.BigIntegerField(help_text="Seeds the choice of variants, temperatures and sampling seeds.")
    attempts = models.PositiveSmallIntegerField(default=0)
    error_code = models.CharField(max_length=20, choices=FailureCode.choices, blank=True)
    error_detail = models.TextField(blank=True, help_text="What went wrong, for researchers (names models).")
    error_message = models.TextField(blank=True, help_text="What went wrong, as the annotator is told.")
    comparison = models.ForeignKey(
        "annotation.Comparison", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "id"], name="generation_job_waiting", condition=Q(status="queued")),
            models.Index(fields=["heartbeat_at"], name="generation_job_running", condition=Q(status="running")),
            models.Index(fields=["requested_by", "batch", "-id"], name="generation_job_by_requester"),
        ]

    def __str__(self) -> str:
        return f"generation job {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in (JobStatus.QUEUED, JobStatus.RUNNING)
