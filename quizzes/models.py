"""Selection quizzes (Llama 2, appendix A.5), the attempts candidates make, reviews, invitations, gating.

A quiz is versioned by `slug`: importing a quiz whose slug exists makes the next version, and a
pass of any version counts as a pass of the quiz (a new version fixes wording; it does not send
every qualified annotator back to the test). Reference answers live in `Question.key` and never
leave the server in anything a candidate receives.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from . import scoring


class RequiredFocus(models.TextChoices):
    NONE = "none", "No batch by default"
    HELPFULNESS = "helpfulness", "Every helpfulness batch"
    SAFETY = "safety", "Every safety batch"
    ALL = "all", "Every batch"


class Quiz(models.Model):
    slug = models.SlugField(max_length=80)
    version = models.PositiveIntegerField(default=1)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    time_limit_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="For the whole quiz, from the start of its first section; empty: none."
    )
    max_attempts = models.PositiveSmallIntegerField(default=2, help_text="Attempts each candidate may make.")
    shuffle_questions = models.BooleanField(default=False, help_text="Each attempt sees its own question order.")
    show_section_scores = models.BooleanField(
        default=True, help_text="Candidates see their score per section, not only pass or fail."
    )
    required_for_focus = models.CharField(
        max_length=20,
        choices=RequiredFocus.choices,
        default=RequiredFocus.NONE,
        help_text="Batches of this focus require a pass, besides batches that name the quiz.",
    )
    is_published = models.BooleanField(default=False, help_text="Candidates can take published quizzes only.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug", "-version"]
        verbose_name_plural = "quizzes"
        constraints = [models.UniqueConstraint(fields=["slug", "version"], name="unique_quiz_version")]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version})"


class Section(models.Model):
    quiz = models.ForeignKey(Quiz, on_delete=models.CASCADE, related_name="sections")
    position = models.PositiveIntegerField()
    key = models.SlugField(max_length=50)
    title = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    time_limit_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")

    class Meta:
        ordering = ["quiz_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["quiz", "position"], name="unique_section_position"),
            models.UniqueConstraint(fields=["quiz", "key"], name="unique_section_key"),
        ]

    def __str__(self) -> str:
        return f"{self.quiz.title} · {self.title}"


class QuestionKind(models.TextChoices):
    MULTIPLE_CHOICE = scoring.MULTIPLE_CHOICE, "Multiple choice"
    LABEL = scoring.LABEL, "Label a prompt-answer pair"
    GRADE = scoring.GRADE, "Grade a prompt-answer pair"
    RANK = scoring.RANK, "Rank answers to one prompt"
    COMPARE = scoring.COMPARE, "Compare two answers"
    FREE_WRITING = scoring.FREE_WRITING, "Free writing"


class Question(models.Model):
    """`content` is what the candidate sees; `key` and `scoring` are for the server and the author only."""

    section = models.ForeignKey(Section, on_delete=models.CASCADE, related_name="questions")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=QuestionKind.choices)
    text = models.TextField()
    content = models.JSONField(default=dict, blank=True)
    key = models.JSONField(null=True, blank=True, help_text="The reference answer (auto-scored kinds).")
    scoring = models.JSONField(default=dict, blank=True, help_text="Tolerances of the agreement rule.")
    rubric = models.TextField(blank=True, help_text="What reviewers grade written answers against.")

    class Meta:
        ordering = ["section_id", "position"]
        constraints = [models.UniqueConstraint(fields=["section", "position"], name="unique_question_position")]

    def __str__(self) -> str:
        return f"question {self.pk} ({self.kind})"

    @property
    def is_auto_scored(self) -> bool:
        return self.kind in scoring.AUTO_KINDS

    @property
    def agreement_rule(self) -> str:
        return scoring.agreement_rule(self.kind, self.content, self.key, self.scoring)


class Measure(models.TextChoices):
    PERCENT_AGREED = scoring.PERCENT_AGREED, "% of auto-scored questions agreed"
    COUNT_AGREED = scoring.COUNT_AGREED, "Number of auto-scored questions agreed"
    AVERAGE_GRADE = scoring.AVERAGE_GRADE, "Reviewers' average grade (1-5)"


class Op(models.TextChoices):
    GTE = "gte", "at least"
    GT = "gt", "more than"


class Criterion(models.Model):
    """A pass rule: the measure over some sections compared with an editable threshold."""

    quiz = models.ForeignKey(Quiz, on_delete=models.CASCADE, related_name="criteria")
    position = models.PositiveIntegerField()
    label = models.CharField(max_length=200)
    section_keys = models.JSONField(default=list)
    measure = models.CharField(max_length=20, choices=Measure.choices)
    op = models.CharField(max_length=3, choices=Op.choices, default=Op.GTE)
    threshold = models.FloatField()
    gate = models.BooleanField(default=False, help_text="When not met, the later sections are not offered.")

    class Meta:
        ordering = ["quiz_id", "position"]
        verbose_name_plural = "criteria"
        constraints = [models.UniqueConstraint(fields=["quiz", "position"], name="unique_criterion_position")]

    def __str__(self) -> str:
        return self.label

    def as_rule(self) -> scoring.Criterion:
        return scoring.Criterion(
            label=self.label,
            sections=tuple(self.section_keys),
            measure=self.measure,
            op=self.op,
            threshold=self.threshold,
            gate=self.gate,
        )


class AttemptStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    AWAITING_REVIEW = "awaiting_review", "Waiting for reviewers"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"


FINAL_STATUSES = (AttemptStatus.PASSED, AttemptStatus.FAILED)


class Attempt(models.Model):
    """One candidate's attempt at one quiz version. Every attempt is kept."""

    quiz = models.ForeignKey(Quiz, on_delete=models.PROTECT, related_name="attempts")
    candidate = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quiz_attempts")
    number = models.PositiveSmallIntegerField(help_text="1 for the candidate's first attempt at this quiz.")
    status = models.CharField(max_length=20, choices=AttemptStatus.choices, default=AttemptStatus.IN_PROGRESS)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True, help_text="When the first section started.")
    deadline = models.DateTimeField(null=True, blank=True, help_text="The quiz's own time limit, if it has one.")
    submitted_at = models.DateTimeField(null=True, blank=True, help_text="When the last section closed.")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When the result became final.")
    layout = models.JSONField(
        default=dict, blank=True, help_text="Per question id: the display permutation of its answers."
    )
    result = models.JSONField(default=dict, blank=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Set when a researcher recorded a pass earned outside Preflab.",
    )
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["quiz", "candidate", "number"], name="unique_attempt_number"),
            models.UniqueConstraint(
                fields=["candidate", "quiz"],
                condition=Q(status="in_progress"),
                name="one_attempt_in_progress",
            ),
        ]
        indexes = [models.Index(fields=["candidate", "status"], name="attempt_by_candidate")]

    def __str__(self) -> str:
        return f"attempt {self.pk} ({self.quiz.slug} #{self.number})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class SectionStatus(models.TextChoices):
    PENDING = "pending", "Not started"
    OPEN = "open", "Open"
    SUBMITTED = "submitted", "Submitted"
    TIMED_OUT = "timed_out", "Submitted when time ran out"
    SKIPPED = "skipped", "Not offered (an earlier part was not passed)"


CLOSED_SECTION_STATUSES = (SectionStatus.SUBMITTED, SectionStatus.TIMED_OUT, SectionStatus.SKIPPED)


class AttemptSection(models.Model):
    """A section within an attempt: its timer and the order its questions are shown in."""

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="sections")
    section = models.ForeignKey(Section, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=SectionStatus.choices, default=SectionStatus.PENDING)
    question_order = models.JSONField(default=list)
    started_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["attempt_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["attempt", "position"], name="unique_attempt_section_position"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.attempt_id} · section {self.position + 1}"

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_SECTION_STATUSES


class Answer(models.Model):
    """The candidate's latest answer to one question, saved as it is given."""

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="answers")
    question = models.ForeignKey(Question, on_delete=models.PROTECT, related_name="+")
    value = models.JSONField(null=True, blank=True, help_text="Canonical form (the author's order).")
    client_seq = models.BigIntegerField(default=0, help_text="Saves with a lower sequence arrived late: ignored.")
    saved_at = models.DateTimeField()
    agreed = models.BooleanField(null=True, blank=True, help_text="Set when the section closes.")

    class Meta:
        ordering = ["attempt_id", "question_id"]
        constraints = [models.UniqueConstraint(fields=["attempt", "question"], name="one_answer_per_question")]

    def __str__(self) -> str:
        return f"answer {self.pk}"


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a reviewer"
    GRADED = "graded", "Graded"
    NOT_NEEDED = "not_needed", "Not needed (the attempt failed on its auto-scored parts)"


class Review(models.Model):
    """One written response (to one chosen prompt), graded 1-5 by a reviewer against the rubric."""

    answer = models.ForeignKey(Answer, on_delete=models.CASCADE, related_name="reviews")
    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="reviews")
    prompt_index = models.PositiveIntegerField()
    text = models.TextField(help_text="The response as it stood when the section closed.")
    status = models.CharField(max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.PENDING)
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="quiz_reviews"
    )
    created_at = models.DateTimeField()
    graded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["answer", "prompt_index"], name="one_review_per_response"),
            models.CheckConstraint(
                name="review_score_1_to_5",
                condition=Q(score__isnull=True) | Q(score__gte=1, score__lte=5),
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="review_queue")]

    def __str__(self) -> str:
        return f"review {self.pk}"

    @property
    def prompt(self) -> str:
        return self.answer.question.content["prompts"][self.prompt_index]


class Invitation(models.Model):
    """A vendor manager's invitation: a secret link that lets one person sign up as the vendor's candidate."""

    vendor = models.ForeignKey("accounts.Vendor", on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    token = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="invitation"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["vendor", "email"], name="invitation_by_vendor_email")]

    def __str__(self) -> str:
        return f"invitation of {self.email}"

    def status_at(self, now) -> str:
        if self.accepted_at:
            return "accepted"
        return "expired" if self.expires_at < now else "pending"


class BatchRequirement(models.Model):
    """A batch names a quiz its annotators must have passed (any version of it)."""

    batch = models.ForeignKey("annotation.Batch", on_delete=models.CASCADE, related_name="quiz_requirements")
    quiz = models.ForeignKey(Quiz, on_delete=models.CASCADE, related_name="batch_requirements")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["batch_id", "quiz_id"]
        constraints = [models.UniqueConstraint(fields=["batch", "quiz"], name="unique_batch_requirement")]

    def __str__(self) -> str:
        return f"{self.batch} requires {self.quiz.slug}"
