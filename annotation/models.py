"""Batches, dialogues, responses, comparisons, leases and ratings: the Llama 2 collection protocol."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

# Gold items and repeats check the annotators; most of each queue stays real work.
MAX_CHECK_RATE = 0.5


class Focus(models.TextChoices):
    HELPFULNESS = "helpfulness", "Helpfulness"
    SAFETY = "safety", "Safety"


class Strength(models.TextChoices):
    """The four levels of preference strength, strongest first."""

    SIGNIFICANTLY_BETTER = "significantly_better", "Significantly better"
    BETTER = "better", "Better"
    SLIGHTLY_BETTER = "slightly_better", "Slightly better"
    NEGLIGIBLY_BETTER = "negligibly_better", "Negligibly better / unsure"


class SafetyLabel(models.TextChoices):
    """Llama 2's three safety bins. "Chosen unsafe, other safe" is not a bin: it is refused."""

    CHOSEN_SAFE_OTHER_UNSAFE = "chosen_safe_other_unsafe", "The chosen response is safe, the other is not"
    BOTH_SAFE = "both_safe", "Both responses are safe"
    BOTH_UNSAFE = "both_unsafe", "Both responses are unsafe"


class Side(models.TextChoices):
    """A comparison's two responses in storage order; what the annotator sees is randomised per lease."""

    A = "a", "Response A"
    B = "b", "Response B"


class PromptMode(models.TextChoices):
    POOL = "pool", "Prepared comparisons (imported or sampled from a prompt pool)"
    ANNOTATOR = "annotator", "Annotator-written prompts"


class Batch(models.Model):
    """A weekly batch of comparisons with one focus."""

    name = models.CharField(max_length=200, unique=True)
    focus = models.CharField(max_length=20, choices=Focus.choices, default=Focus.HELPFULNESS)
    overlap = models.PositiveSmallIntegerField(default=3, help_text="Ratings each comparison collects.")
    guidelines = models.TextField(blank=True)
    is_open = models.BooleanField(default=True)
    week = models.DateField(help_text="Monday of the week the batch was opened.")
    prompt_mode = models.CharField(max_length=20, choices=PromptMode.choices, default=PromptMode.POOL)
    lease_minutes = models.PositiveSmallIntegerField(default=10)
    gold_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(MAX_CHECK_RATE)],
        help_text="Share of each annotator's pairs drawn from the batch's gold comparisons they have not rated.",
    )
    repeat_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(MAX_CHECK_RATE)],
        help_text="Share of each annotator's pairs that show them an earlier pair again, sides swapped.",
    )
    # Set while an agreement recompute is queued and cleared when it starts: the debounce of
    # agreement.services.agreement_recompute_request.
    agreement_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When the last recompute started: a batch is recomputed on its own at most every
    # PREFLAB_AGREEMENT_MIN_INTERVAL_SECONDS (kept on the batch row, so a rating reads no report).
    agreement_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-week", "-id"]
        verbose_name_plural = "batches"
        constraints = [
            models.CheckConstraint(name="batch_overlap_positive", condition=Q(overlap__gte=1)),
            models.CheckConstraint(
                name="batch_check_rates",
                condition=Q(gold_rate__gte=0, repeat_rate__gte=0, gold_rate__lte=MAX_CHECK_RATE - F("repeat_rate")),
                violation_error_message=f"Gold and repeat rates are shares of at least 0 adding up to at most "
                f"{MAX_CHECK_RATE}.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_safety(self) -> bool:
        return self.focus == Focus.SAFETY


class Prompt(models.Model):
    """A prompt in a batch's pool, waiting to be turned into a comparison."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="prompts")
    text = models.TextField()
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text[:80]


class Dialogue(models.Model):
    """A conversation; comparisons are made at its user turns."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="dialogues")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"dialogue {self.pk}"


class Turn(models.Model):
    class Role(models.TextChoices):
        SYSTEM = "system", "System"  # only as a dialogue's first turn (imported data)
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField()
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField()

    class Meta:
        ordering = ["dialogue_id", "index"]
        constraints = [models.UniqueConstraint(fields=["dialogue", "index"], name="unique_turn_index")]

    def __str__(self) -> str:
        return f"{self.role} turn {self.index} of dialogue {self.dialogue_id}"


class Response(models.Model):
    """One sampled (or imported) model response, with how it was made."""

    text = models.TextField()
    variant = models.ForeignKey("sampling.ModelVariant", on_delete=models.PROTECT, related_name="responses")
    temperature = models.FloatField()
    top_p = models.FloatField(null=True, blank=True)
    max_new_tokens = models.PositiveIntegerField(null=True, blank=True)
    generation = models.JSONField(default=dict, blank=True, help_text="Full generation settings and pair policy.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"response {self.pk}"


class ComparisonStatus(models.TextChoices):
    OPEN = "open", "Collecting ratings"
    COMPLETE = "complete", "Rated by its overlap"
    REPEAT = "repeat", "Repeat of another comparison (a consistency check, never labelled)"


class Vote(models.TextChoices):
    UNANIMOUS = "unanimous", "Unanimous"
    SPLIT = "split", "Split (majority)"
    TIED = "tied", "Tied (no majority)"


class Comparison(models.Model):
    """Two responses to the same dialogue context, to be rated `batch.overlap` times."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="comparisons")
    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="comparisons")
    context_length = models.PositiveIntegerField(help_text="Turns of the dialogue before the responses.")
    response_a = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="+")
    response_b = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=ComparisonStatus.choices, default=ComparisonStatus.OPEN)
    # Denormalised counters, changed only under the comparison's row lock (see annotation.services).
    rating_count = models.PositiveIntegerField(default=0)
    slots_taken = models.PositiveIntegerField(default=0, help_text="Ratings plus live leases.")
    # The majority label, recomputed from the ratings (annotation.voting).
    label_choice = models.CharField(max_length=1, choices=Side.choices, blank=True)
    label_strength = models.CharField(max_length=30, choices=Strength.choices, blank=True)
    label_safety = models.CharField(max_length=30, choices=SafetyLabel.choices, blank=True)
    label_vote = models.CharField(max_length=10, choices=Vote.choices, blank=True)
    labelled_at = models.DateTimeField(null=True, blank=True)
    # Gold items carry a known answer; repeats show an earlier comparison again with sides swapped.
    # See docs/protocol.md, "Gold and repeats": neither counts toward overlap or majority labels.
    is_gold = models.BooleanField(default=False)
    gold_choice = models.CharField(max_length=1, choices=Side.choices, blank=True)
    gold_strength = models.CharField(max_length=30, choices=Strength.choices, blank=True)
    gold_marked_at = models.DateTimeField(
        null=True, blank=True, help_text="Ratings from this time on test the annotator; earlier ones made the label."
    )
    repeat_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="repeats")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["batch", "-rating_count", "id"],
                name="comparison_queue",
                condition=Q(status="open"),
            ),
            models.Index(fields=["batch", "id"], name="comparison_gold", condition=Q(is_gold=True)),
        ]
        constraints = [
            models.CheckConstraint(name="comparison_two_responses", condition=~Q(response_a=models.F("response_b"))),
            models.CheckConstraint(
                name="gold_has_an_answer",
                condition=Q(is_gold=False) | (Q(gold_choice__in=["a", "b"]) & Q(gold_marked_at__isnull=False)),
                violation_error_message="A gold comparison needs its expected answer.",
            ),
        ]

    def __str__(self) -> str:
        return f"comparison {self.pk}"

    def response_for(self, side: str) -> Response:
        return self.response_a if side == Side.A else self.response_b


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    RELEASED = "released", "Released (lease expired)"


class Assignment(models.Model):
    """A comparison handed to one annotator: the lease, and the side order they see."""

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    swapped = models.BooleanField(help_text="True when response B is shown on the left.")
    status = models.CharField(max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED)
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["leased_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="one_assignment_per_annotator"),
        ]
        indexes = [
            models.Index(fields=["annotator", "status"], name="assignment_by_annotator"),
            models.Index(fields=["expires_at"], name="assignment_live_leases", condition=Q(status="leased")),
        ]

    def __str__(self) -> str:
        return f"assignment {self.pk}"

    @property
    def left_side(self) -> str:
        return Side.B if self.swapped else Side.A


class Rating(models.Model):
    """One annotator's judgement of one comparison."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="rating")
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="ratings")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ratings")
    chosen = models.CharField(max_length=1, choices=Side.choices)
    strength = models.CharField(max_length=30, choices=Strength.choices)
    safety_label = models.CharField(max_length=30, choices=SafetyLabel.choices, blank=True)
    rationale = models.TextField(blank=True)
    seconds_spent = models.FloatField(null=True, blank=True)
    shown_left = models.CharField(max_length=1, choices=Side.choices, help_text="Which response was on the left.")
    idempotency_key = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="one_rating_per_annotator"),
            models.UniqueConstraint(fields=["annotator", "idempotency_key"], name="unique_rating_idempotency_key"),
        ]
        indexes = [
            models.Index(fields=["annotator", "created_at"], name="rating_by_annotator_time"),
            # The reconciler looks for ratings newer than a batch's agreement report.
            models.Index(fields=["created_at"], name="rating_by_time"),
        ]

    def __str__(self) -> str:
        return f"rating {self.pk}"

    @property
    def chose_left(self) -> bool:
        return self.chosen == self.shown_left
