"""API shapes. Candidate-facing shapes are built from explicit whitelists of `Question.content`:
reference answers (`key`), tolerances (`scoring`) and rubrics never appear in them, and per-question
agreement is never reported back to a candidate (it would give the key away for the next attempt)."""

from datetime import datetime
from typing import Any

from django.urls import reverse
from rest_framework import serializers

from . import clock, scoring
from .documents import quiz_document
from .models import Attempt, AttemptSection, BatchRequirement, Invitation, Question, Quiz, Review, SectionStatus
from .selectors import QuizStanding

# ---------------------------------------------------------------- candidates


def candidate_question(question: Question, permutation: list[int] | None, value: dict | None) -> dict[str, Any]:
    """A question as the candidate sees it: its content in display order and their own answer."""
    content = question.content
    data: dict[str, Any] = {"id": question.pk, "kind": question.kind, "text": question.text}
    if question.kind == scoring.MULTIPLE_CHOICE:
        data["options"] = list(content["options"])
    elif question.kind in (scoring.LABEL, scoring.GRADE):
        data["prompt"] = content["prompt"]
        data["response"] = content["response"]
        if question.kind == scoring.LABEL:
            data["labels"] = list(content["labels"])
        else:
            data["scale"] = list(content["scale"])
    elif question.kind in scoring.PERMUTED_KINDS:
        order = permutation or list(range(len(content["responses"])))
        data["prompt"] = content["prompt"]
        data["responses"] = [content["responses"][i] for i in order]
        if question.kind == scoring.COMPARE:
            data["strengths"] = [{"value": s, "label": scoring.STRENGTH_LABELS[s]} for s in scoring.STRENGTHS]
    elif question.kind == scoring.FREE_WRITING:
        data["prompts"] = list(content["prompts"])
        data["min_choices"] = content["min_choices"]
        data["max_choices"] = content.get("max_choices")
    data["answer"] = scoring.to_display(question.kind, permutation, value)
    return data


def _section_summary(row: AttemptSection, counts: dict[int, int]) -> dict[str, Any]:
    return {
        "position": row.position,
        "title": row.section.title,
        "status": row.status,
        "time_limit_minutes": row.section.time_limit_minutes,
        "question_count": counts.get(row.section_id, 0),
        "started_at": row.started_at,
        "deadline": row.deadline,
        "closed_at": row.closed_at,
    }


def candidate_result(attempt: Attempt) -> dict[str, Any] | None:
    if attempt.status == "in_progress":
        return None
    result: dict[str, Any] = {"passed": attempt.result.get("passed"), "status": attempt.status}
    if attempt.quiz.show_section_scores and not attempt.result.get("granted"):
        result["reasons"] = attempt.result.get("reasons", [])
        result["criteria"] = [
            {k: c.get(k) for k in ("label", "rule", "value", "passed", "note")}
            for c in attempt.result.get("criteria", [])
        ]
        result["sections"] = [
            {k: s.get(k) for k in ("title", "status", "percent_agreed", "average_grade", "grades_pending")}
            for s in attempt.result.get("sections", [])
        ]
    return result


def candidate_attempt(attempt: Attempt, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the quiz page needs: the sections and their timers, the open section's questions
    with the answers saved so far, the server's clock (for the countdown) and, at the end, the result."""
    rows = list(attempt.sections.select_related("section").order_by("position"))
    questions = {
        q.pk: q
        for q in Question.objects.filter(section__quiz_id=attempt.quiz_id).only(
            "id", "kind", "text", "content", "section_id"
        )
    }
    counts: dict[int, int] = {}
    for q in questions.values():
        counts[q.section_id] = counts.get(q.section_id, 0) + 1
    current = next((r for r in rows if not r.is_closed), None)
    current_data = None
    if current is not None and attempt.status == "in_progress":
        current_data = {**_section_summary(current, counts), "instructions": current.section.instructions}
        if current.status == SectionStatus.OPEN:
            answers = dict(
                attempt.answers.filter(question_id__in=current.question_order).values_list("question_id", "value")
            )
            current_data["questions"] = [
                candidate_question(questions[qid], attempt.layout.get(str(qid)), answers.get(qid))
                for qid in current.question_order
            ]
    quiz = attempt.quiz
    return {
        "id": attempt.pk,
        "number": attempt.number,
        "status": attempt.status,
        "status_display": attempt.get_status_display(),
        "quiz": {
            "id": quiz.pk,
            "slug": quiz.slug,
            "title": quiz.title,
            "description": quiz.description,
            "max_attempts": quiz.max_attempts,
            "time_limit_minutes": quiz.time_limit_minutes,
        },
        "server_now": now or clock.now(),
        "created_at": attempt.created_at,
        "started_at": attempt.started_at,
        "deadline": attempt.deadline,
        "submitted_at": attempt.submitted_at,
        "finished_at": attempt.finished_at,
        "sections": [_section_summary(r, counts) for r in rows],
        "current": current_data,
        "result": candidate_result(attempt),
    }


class CandidateAttemptSerializer(serializers.Serializer):
    """Documents the shape of `candidate_attempt` for the OpenAPI schema."""

    id = serializers.IntegerField()
    number = serializers.IntegerField()
    status = serializers.CharField()
    status_display = serializers.CharField()
    quiz = serializers.DictField()
    server_now = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    deadline = serializers.DateTimeField(allow_null=True)
    submitted_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    sections = serializers.ListField(child=serializers.DictField())
    current = serializers.DictField(allow_null=True)
    result = serializers.DictField(allow_null=True)


class AnswerSaveSerializer(serializers.Serializer):
    value = serializers.JSONField(allow_null=True)
    seq = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0)


class SavedAnswerSerializer(serializers.Serializer):
    question = serializers.IntegerField()
    answer = serializers.JSONField(allow_null=True)
    seq = serializers.IntegerField()
    saved_at = serializers.DateTimeField()
    stale = serializers.BooleanField()


class SectionSubmitSerializer(serializers.Serializer):
    confirm_incomplete = serializers.BooleanField(default=False)


def _section_list(quiz: Quiz, *, for_author: bool = False) -> list[dict[str, Any]]:
    sections = []
    for s in quiz.sections.order_by("position"):
        data = {"id": s.pk, "title": s.title, "time_limit_minutes": s.time_limit_minutes}
        if for_author:
            data["key"] = s.key
        data["question_count"] = s.questions.count()
        sections.append(data)
    return sections


class CandidateQuizSerializer(serializers.ModelSerializer):
    """A quiz in a candidate's list: what it asks and where they stand, no questions."""

    sections = serializers.SerializerMethodField()
    standing = serializers.SerializerMethodField()

    class Meta:
        model = Quiz
        fields = [
            "id",
            "slug",
            "version",
            "title",
            "description",
            "time_limit_minutes",
            "max_attempts",
            "sections",
            "standing",
        ]

    def get_sections(self, quiz: Quiz) -> list[dict]:
        return _section_list(quiz)

    def get_standing(self, quiz: Quiz) -> dict | None:
        standing: QuizStanding | None = self.context.get("standings", {}).get(quiz.slug)
        if standing is None:
            return None
        return {
            "passed": standing.passed,
            "attempts_left": standing.attempts_left,
            "awaiting_review": standing.awaiting_review,
            "open_attempt": standing.open_attempt.pk if standing.open_attempt else None,
            "can_start": standing.can_start,
        }


# ---------------------------------------------------------------- authors


class CriterionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    sections = serializers.ListField(source="section_keys", child=serializers.CharField())
    measure = serializers.CharField()
    op = serializers.CharField()
    threshold = serializers.FloatField()
    gate = serializers.BooleanField()
    rule = serializers.SerializerMethodField()

    def get_rule(self, criterion) -> str:
        return criterion.as_rule().describe()


class AuthorQuizSerializer(serializers.ModelSerializer):
    """A quiz as its authors see it: settings, thresholds and the rule for "agreed" of every question.
    The full content with reference answers is the export (`/api/quizzes/{id}/export/`)."""

    sections = serializers.SerializerMethodField()
    criteria = CriterionSerializer(many=True, read_only=True)
    attempts = serializers.IntegerField(source="attempts.count", read_only=True)

    class Meta:
        model = Quiz
        fields = [
            "id",
            "slug",
            "version",
            "title",
            "description",
            "time_limit_minutes",
            "max_attempts",
            "shuffle_questions",
            "show_section_scores",
            "required_for_focus",
            "is_published",
            "created_at",
            "sections",
            "criteria",
            "attempts",
        ]

    def get_sections(self, quiz: Quiz) -> list[dict]:
        detail = self.context.get("detail", False)
        sections = _section_list(quiz, for_author=True)
        if detail:
            for data in sections:
                data["questions"] = [
                    {"id": q.pk, "kind": q.kind, "text": q.text, "agreement_rule": q.agreement_rule}
                    for q in Question.objects.filter(section_id=data["id"]).order_by("position")
                ]
        return sections


class CriterionThresholdSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    threshold = serializers.FloatField(required=False)
    op = serializers.ChoiceField(choices=["gte", "gt"], required=False)
    label = serializers.CharField(required=False, max_length=200)

    def validate(self, attrs: dict) -> dict:
        if "id" not in attrs:  # inside a PATCH DRF makes every nested field optional, the id too
            raise serializers.ValidationError({"id": ["This field is required."]})
        return attrs


class SectionLimitSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    time_limit_minutes = serializers.IntegerField(allow_null=True, min_value=1)

    def validate(self, attrs: dict) -> dict:
        # Inside a PATCH DRF makes every nested field optional; a section's entry needs both.
        missing = [name for name in ("id", "time_limit_minutes") if name not in attrs]
        if missing:
            raise serializers.ValidationError({name: ["This field is required."] for name in missing})
        return attrs


class QuizSettingsSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    time_limit_minutes = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    max_attempts = serializers.IntegerField(required=False, min_value=1, max_value=20)
    shuffle_questions = serializers.BooleanField(required=False)
    show_section_scores = serializers.BooleanField(required=False)
    required_for_focus = serializers.ChoiceField(choices=["none", "helpfulness", "safety", "all"], required=False)
    is_published = serializers.BooleanField(required=False)
    criteria = CriterionThresholdSerializer(many=True, required=False)
    sections = SectionLimitSerializer(many=True, required=False)


class QuizImportSerializer(serializers.Serializer):
    document = serializers.JSONField(help_text="One quiz or {'quizzes': [...]} in the preflab-quiz/1 format.")
    publish = serializers.BooleanField(default=False)


class QuizDocumentSerializer(serializers.Serializer):
    """The export: the JSON format, keys included."""

    def to_representation(self, quiz: Quiz) -> dict:
        return quiz_document(quiz)


# ---------------------------------------------------------------- attempts for staff


class AttemptSummarySerializer(serializers.ModelSerializer):
    quiz = serializers.SerializerMethodField()
    candidate = serializers.CharField(source="candidate.username")
    vendor = serializers.CharField(source="candidate.vendor", default=None)
    granted = serializers.SerializerMethodField()

    class Meta:
        model = Attempt
        fields = [
            "id",
            "quiz",
            "candidate",
            "vendor",
            "number",
            "status",
            "created_at",
            "started_at",
            "submitted_at",
            "finished_at",
            "granted",
            "result",
        ]

    def get_quiz(self, attempt: Attempt) -> dict:
        return {"id": attempt.quiz_id, "slug": attempt.quiz.slug, "title": attempt.quiz.title}

    def get_granted(self, attempt: Attempt) -> bool:
        return attempt.granted_by_id is not None


# ---------------------------------------------------------------- reviews


class ReviewSerializer(serializers.ModelSerializer):
    """A written response in the review queue. The candidate is shown by pseudonym: reviews are blind."""

    quiz = serializers.CharField(source="answer.question.section.quiz.title")
    section = serializers.CharField(source="answer.question.section.title")
    question = serializers.CharField(source="answer.question.text")
    prompt = serializers.CharField()
    rubric = serializers.CharField(source="answer.question.rubric")
    candidate = serializers.CharField(source="attempt.candidate.pseudonym")
    reviewer = serializers.CharField(source="reviewer.username", default=None)

    class Meta:
        model = Review
        fields = [
            "id",
            "attempt",
            "quiz",
            "section",
            "question",
            "prompt",
            "text",
            "rubric",
            "candidate",
            "status",
            "score",
            "comment",
            "reviewer",
            "graded_at",
        ]


class ReviewGradeSerializer(serializers.Serializer):
    score = serializers.IntegerField(min_value=1, max_value=5)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


# ---------------------------------------------------------------- vendors


class InvitationSerializer(serializers.ModelSerializer):
    vendor = serializers.StringRelatedField()
    status = serializers.SerializerMethodField()
    link = serializers.SerializerMethodField()
    username = serializers.CharField(source="user.username", default=None, allow_null=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "vendor", "status", "link", "created_at", "expires_at", "accepted_at", "username"]

    def get_status(self, invitation: Invitation) -> str:
        return invitation.status_at(clock.now())

    def get_link(self, invitation: Invitation) -> str:
        path = reverse("quiz-invitation-accept", args=[invitation.token])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class InvitationCreateSerializer(serializers.Serializer):
    emails = serializers.ListField(
        child=serializers.CharField(allow_blank=True, max_length=254), min_length=1, max_length=500
    )
    vendor = serializers.IntegerField(
        required=False, help_text="Researchers choose the vendor; managers invite to theirs."
    )


class InvitationAcceptSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=64)
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, style={"input_type": "password"})


class PersonReportSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="person.id")
    username = serializers.CharField(source="person.username")
    email = serializers.CharField(source="person.email")
    vendor = serializers.CharField(source="person.vendor", default=None, allow_null=True)
    qualified = serializers.BooleanField()
    attempts = serializers.IntegerField()
    results = serializers.SerializerMethodField()
    open_batches = serializers.IntegerField()
    ratings = serializers.IntegerField()
    ratings_week = serializers.IntegerField()
    median_seconds = serializers.FloatField(allow_null=True)
    majority_agreement = serializers.FloatField(allow_null=True)
    labelled_ratings = serializers.IntegerField()

    def get_results(self, row) -> dict:
        return {
            slug: None
            if attempt is None
            else {"attempt": attempt.pk, "status": attempt.status, "number": attempt.number}
            for slug, attempt in row.results.items()
        }


class BatchRequirementSerializer(serializers.ModelSerializer):
    quiz_slug = serializers.CharField(source="quiz.slug", read_only=True)
    quiz_title = serializers.CharField(source="quiz.title", read_only=True)

    class Meta:
        model = BatchRequirement
        fields = ["id", "batch", "quiz", "quiz_slug", "quiz_title", "created_at"]
        read_only_fields = ["id", "created_at"]


class PassRateSerializer(serializers.Serializer):
    """One quiz's results over the candidates a user may see (selectors.pass_rates)."""

    quiz = serializers.CharField(help_text="The quiz's slug.")
    title = serializers.CharField()
    candidates = serializers.IntegerField()
    attempts = serializers.IntegerField()
    final = serializers.IntegerField()
    passed = serializers.IntegerField()
    waiting_for_review = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    pass_rate = serializers.FloatField(allow_null=True, help_text="Percent of final attempts that passed.")


class InvitationAcceptedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    vendor = serializers.CharField()
