"""Reads of quizzes, attempts, reviews and vendors' people, scoped by who is asking."""

from dataclasses import dataclass
from datetime import timedelta
from statistics import median

from django.db.models import Count, F, Q, QuerySet

from accounts.models import Role, User, Vendor
from accounts.selectors import vendors_for
from annotation.models import Batch, Rating

from . import clock
from .models import (
    FINAL_STATUSES,
    Attempt,
    AttemptStatus,
    BatchRequirement,
    Invitation,
    Quiz,
    RequiredFocus,
    Review,
    ReviewStatus,
)

# ---------------------------------------------------------------- quizzes


def latest_versions(quizzes: QuerySet[Quiz]) -> list[Quiz]:
    """The newest version of each slug among `quizzes`, by title."""
    newest: dict[str, Quiz] = {}
    for quiz in quizzes.order_by("slug", "-version"):
        newest.setdefault(quiz.slug, quiz)
    return sorted(newest.values(), key=lambda q: (q.title.lower(), q.slug))


def published_quizzes() -> list[Quiz]:
    """What candidates can take: the newest published version of each quiz."""
    return latest_versions(Quiz.objects.filter(is_published=True))


def current_version(slug: str) -> Quiz | None:
    return Quiz.objects.filter(slug=slug, is_published=True).order_by("-version").first()


def passed_slugs(user: User) -> set[str]:
    return set(Attempt.objects.filter(candidate=user, status=AttemptStatus.PASSED).values_list("quiz__slug", flat=True))


def required_quizzes_for(batch: Batch) -> list[Quiz]:
    """Quizzes a batch's annotators must have passed: those the batch names, and every published
    quiz whose newest version is required for the batch's focus (or for all batches)."""
    named = {r.quiz.slug: r.quiz for r in BatchRequirement.objects.filter(batch=batch).select_related("quiz")}
    for quiz in published_quizzes():
        if quiz.required_for_focus in (batch.focus, RequiredFocus.ALL):
            named.setdefault(quiz.slug, quiz)
    return sorted(named.values(), key=lambda q: q.title.lower())


def quiz_requirement_refusal(user: User, batch: Batch) -> str | None:
    """The qualification check registered with annotation: None when every required quiz is passed."""
    required = required_quizzes_for(batch)
    if not required:
        return None
    passed = passed_slugs(user)
    missing = [quiz for quiz in required if quiz.slug not in passed]
    if not missing:
        return None
    titles = ", ".join(f"“{quiz.title}”" for quiz in missing)
    plural = "zes" if len(missing) > 1 else ""
    return (
        f"The batch {batch.name!r} is open to annotators who passed the selection quiz{plural} {titles}. "
        "Take it from your Quizzes page; your vendor manager can help."
    )


# ---------------------------------------------------------------- attempts


def attempts_for(user: User) -> QuerySet[Attempt]:
    """Candidates see their own attempts, vendor managers their vendor's, researchers all."""
    attempts = Attempt.objects.select_related("quiz", "candidate__vendor")
    if user.is_researcher:
        return attempts
    if user.is_vendor_manager:
        return attempts.filter(candidate__vendor_id=user.vendor_id)
    return attempts.filter(candidate=user)


@dataclass(frozen=True)
class QuizStanding:
    """Where one candidate stands with one quiz (any version)."""

    quiz: Quiz
    attempts: list[Attempt]
    open_attempt: Attempt | None
    passed: bool
    attempts_left: int
    awaiting_review: bool

    @property
    def can_start(self) -> bool:
        return self.open_attempt is None and not self.passed and not self.awaiting_review and self.attempts_left > 0


def standing(user: User, quiz: Quiz) -> QuizStanding:
    attempts = list(
        Attempt.objects.filter(candidate=user, quiz__slug=quiz.slug).select_related("quiz").order_by("-created_at")
    )
    taken = [a for a in attempts if a.granted_by_id is None]
    return QuizStanding(
        quiz=quiz,
        attempts=attempts,
        open_attempt=next((a for a in attempts if a.status == AttemptStatus.IN_PROGRESS), None),
        passed=any(a.status == AttemptStatus.PASSED for a in attempts),
        attempts_left=max(0, quiz.max_attempts - len(taken)),
        awaiting_review=any(a.status == AttemptStatus.AWAITING_REVIEW for a in attempts),
    )


def candidate_quizzes(user: User) -> list[QuizStanding]:
    return [standing(user, quiz) for quiz in published_quizzes()]


def batches_requiring(quiz: Quiz) -> list[Batch]:
    """Open batches that require this quiz (by name or by focus), for the candidate's quiz list."""
    return [
        batch
        for batch in Batch.objects.filter(is_open=True)
        if quiz.slug in {q.slug for q in required_quizzes_for(batch)}
    ]


# ---------------------------------------------------------------- reviews


def review_queue() -> QuerySet[Review]:
    """Written responses waiting for a grade, oldest attempt first."""
    return (
        Review.objects.filter(status=ReviewStatus.PENDING, attempt__status=AttemptStatus.AWAITING_REVIEW)
        .select_related("answer__question__section__quiz", "attempt__candidate")
        .order_by("attempt__submitted_at", "attempt_id", "id")
    )


def review_counts() -> list[dict]:
    """Pending reviews per quiz, for the top of the review queue."""
    return list(
        review_queue()
        .values("attempt__quiz__title", "attempt__quiz__version")
        .annotate(n=Count("id"), attempts=Count("attempt", distinct=True))
        .order_by("attempt__quiz__title")
    )


# ---------------------------------------------------------------- vendors


def vendors_visible_to(user: User) -> QuerySet[Vendor]:
    return vendors_for(user=user)


def invitations_for(user: User, vendor_id: int | None = None) -> QuerySet[Invitation]:
    invitations = Invitation.objects.select_related("vendor", "user", "invited_by")
    if not user.is_researcher:
        invitations = invitations.filter(vendor_id=user.vendor_id)
    if vendor_id:
        invitations = invitations.filter(vendor_id=vendor_id)
    return invitations


def annotators_for(user: User, vendor_id: int | None = None) -> QuerySet[User]:
    """Annotators (candidates included) the user may see: researchers all, vendor managers their own."""
    people = User.objects.filter(role=Role.ANNOTATOR).select_related("vendor")
    if not user.is_researcher:
        people = people.filter(vendor_id=user.vendor_id)
    if vendor_id:
        people = people.filter(vendor_id=vendor_id)
    return people.order_by("vendor__name", "username")


@dataclass(frozen=True)
class PersonRow:
    person: User
    results: dict[str, Attempt | None]  # quiz slug -> the attempt that best describes where they stand
    attempts: int
    qualified: bool  # passed at least one quiz (a candidate until then)
    open_batches: int
    ratings: int
    ratings_week: int
    median_seconds: float | None
    majority_agreement: float | None  # share of their ratings on labelled pairs that match the majority
    labelled_ratings: int


def _best_attempt(attempts: list[Attempt]) -> Attempt | None:
    """Passed beats waiting beats in progress beats failed; the newest of each."""
    rank = {
        AttemptStatus.PASSED: 0,
        AttemptStatus.AWAITING_REVIEW: 1,
        AttemptStatus.IN_PROGRESS: 2,
        AttemptStatus.FAILED: 3,
    }
    return min(attempts, key=lambda a: (rank[a.status], -a.created_at.timestamp()), default=None)


def people_report(user: User, vendor_id: int | None = None) -> tuple[list[Quiz], list[PersonRow]]:
    """Each visible annotator's quiz results, throughput and quality, in a few queries."""
    quizzes = published_quizzes()
    people = list(annotators_for(user, vendor_id))
    ids = [p.pk for p in people]
    by_person: dict[int, list[Attempt]] = {}
    for attempt in Attempt.objects.filter(candidate_id__in=ids).select_related("quiz"):
        by_person.setdefault(attempt.candidate_id, []).append(attempt)
    week_ago = clock.now() - timedelta(days=7)
    ratings = (
        Rating.objects.filter(annotator_id__in=ids)
        .values("annotator_id")
        .annotate(
            n=Count("id"),
            week=Count("id", filter=Q(created_at__gte=week_ago)),
            labelled=Count("id", filter=~Q(comparison__label_choice="")),
            agreed=Count("id", filter=Q(chosen=F("comparison__label_choice"))),
        )
    )
    rating_stats = {row["annotator_id"]: row for row in ratings}
    seconds: dict[int, list[float]] = {}
    for annotator_id, spent in Rating.objects.filter(annotator_id__in=ids, seconds_spent__isnull=False).values_list(
        "annotator_id", "seconds_spent"
    ):
        seconds.setdefault(annotator_id, []).append(spent)
    open_batches = list(Batch.objects.filter(is_open=True))
    requirements = {batch.pk: {q.slug for q in required_quizzes_for(batch)} for batch in open_batches}
    rows = []
    for person in people:
        attempts = by_person.get(person.pk, [])
        passed = {a.quiz.slug for a in attempts if a.status == AttemptStatus.PASSED}
        stats = rating_stats.get(person.pk, {})
        labelled = stats.get("labelled", 0)
        rows.append(
            PersonRow(
                person=person,
                results={q.slug: _best_attempt([a for a in attempts if a.quiz.slug == q.slug]) for q in quizzes},
                attempts=sum(1 for a in attempts if a.granted_by_id is None),
                qualified=bool(passed),
                open_batches=sum(1 for b in open_batches if requirements[b.pk] <= passed),
                ratings=stats.get("n", 0),
                ratings_week=stats.get("week", 0),
                median_seconds=round(median(seconds[person.pk]), 1) if seconds.get(person.pk) else None,
                majority_agreement=round(100 * stats.get("agreed", 0) / labelled, 1) if labelled else None,
                labelled_ratings=labelled,
            )
        )
    return quizzes, rows


def pass_rates(user: User, vendor_id: int | None = None) -> list[dict]:
    """Per quiz: attempts taken by the visible candidates, how many are final, passed, and the pass rate."""
    attempts = attempts_for(user).filter(granted_by__isnull=True)
    if vendor_id:
        attempts = attempts.filter(candidate__vendor_id=vendor_id)
    rows = (
        attempts.values("quiz__slug")
        .annotate(
            taken=Count("id"),
            final=Count("id", filter=Q(status__in=FINAL_STATUSES)),
            passed=Count("id", filter=Q(status=AttemptStatus.PASSED)),
            waiting=Count("id", filter=Q(status=AttemptStatus.AWAITING_REVIEW)),
            in_progress=Count("id", filter=Q(status=AttemptStatus.IN_PROGRESS)),
            candidates=Count("candidate", distinct=True),
        )
        .order_by("quiz__slug")
    )
    titles = {q.slug: q.title for q in latest_versions(Quiz.objects.all())}
    return [
        {
            "quiz": row["quiz__slug"],
            "title": titles.get(row["quiz__slug"], row["quiz__slug"]),
            "candidates": row["candidates"],
            "attempts": row["taken"],
            "final": row["final"],
            "passed": row["passed"],
            "waiting_for_review": row["waiting"],
            "in_progress": row["in_progress"],
            "pass_rate": round(100 * row["passed"] / row["final"], 1) if row["final"] else None,
        }
        for row in rows
    ]


# ---------------------------------------------------------------- pages


def quizzes_for(*, user: User) -> QuerySet[Quiz]:
    """Quizzes the user may open: researchers every version, everyone else the published ones."""
    quizzes = Quiz.objects.all()
    return quizzes if user.is_researcher else quizzes.filter(is_published=True)


def quizzes_with_attempts(*, user: User) -> list[Quiz]:
    """Every version the user may open, by title, newest version first, with its attempts fetched."""
    return list(quizzes_for(user=user).order_by("title", "slug", "-version").prefetch_related("attempts"))


def pending_review_count() -> int:
    return review_queue().count()


def quiz_authoring(*, quiz: Quiz) -> dict:
    """What the author's page of one quiz shows besides the quiz: its sections, criteria with their
    rules in words, the batches that require it (by name, and by focus once published), the other
    batches it could be required for, its versions and its attempts' statuses."""
    sections = list(quiz.sections.order_by("position").prefetch_related("questions"))
    required_by = [r.batch for r in quiz.batch_requirements.select_related("batch")]
    focus_batches = []
    if quiz.is_published:
        focus_batches = [
            b for b in Batch.objects.filter(is_open=True) if quiz.required_for_focus in (b.focus, RequiredFocus.ALL)
        ]
    auto_totals = {s.key: sum(1 for q in s.questions.all() if q.is_auto_scored) for s in sections}
    criteria = [
        {"row": c, "rule": c.as_rule().describe(sum(auto_totals.get(k, 0) for k in c.section_keys))}
        for c in quiz.criteria.order_by("position")
    ]
    return {
        "sections": sections,
        "criteria": criteria,
        "required_by": required_by,
        "focus_batches": focus_batches,
        "other_batches": Batch.objects.exclude(pk__in=[b.pk for b in required_by]).order_by("-week", "name"),
        "versions": Quiz.objects.filter(slug=quiz.slug).order_by("-version"),
        "attempt_counts": quiz.attempts.values("status").order_by("status"),
    }


@dataclass(frozen=True)
class ReviewDesk:
    """The review page: the written answer to grade, its attempt's other answers, and the queue's size."""

    review: Review | None
    siblings: list[Review]
    pending: int
    counts: list[dict]


def review_desk(*, review_id: int | None = None) -> ReviewDesk:
    """The chosen review (any status), else the oldest pending one."""
    queue = review_queue()
    review = None
    if review_id is not None:
        review = (
            Review.objects.select_related("answer__question__section__quiz", "attempt__candidate")
            .filter(pk=review_id)
            .first()
        )
    review = review or queue.first()
    siblings = []
    if review is not None:
        siblings = list(
            Review.objects.filter(attempt=review.attempt).select_related("answer__question__section").order_by("id")
        )
    return ReviewDesk(review=review, siblings=siblings, pending=queue.count(), counts=review_counts())


def vendor_for(*, user: User, vendor_id) -> Vendor | None:
    """The vendor of this id if the user may see it (researchers any, vendor managers their own)."""
    return vendors_visible_to(user).filter(pk=vendor_id).first() if vendor_id else None


def invitation_by_token(*, token: str) -> Invitation | None:
    return Invitation.objects.select_related("vendor").filter(token=token).first()
