"""Reviews and qualification: researchers grade written responses (the last grade makes the result
final) and record passes earned outside Preflab."""

from datetime import datetime

from django.db import transaction

from accounts.models import User
from config.exceptions import Conflict, DomainError, InvalidInput, NotAllowed, NotFound

from .. import clock, scoring
from ..models import Attempt, AttemptStatus, Quiz, Review, ReviewStatus
from .results import attempt_settle


def review_grade(
    *, reviewer: User, review_id: int, score: int, comment: str = "", now: datetime | None = None
) -> Review:
    """Grade one written response 1-5. The attempt's result becomes final with its last grade."""
    if not reviewer.is_researcher:
        raise NotAllowed("Only researchers review written quiz answers.")
    if isinstance(score, bool) or not isinstance(score, int) or not scoring.GRADE_MIN <= score <= scoring.GRADE_MAX:
        raise InvalidInput("Grade the response with a whole number from 1 to 5.", field="score")
    now = now or clock.now()
    refusal: DomainError | None = None
    with transaction.atomic():
        review = Review.objects.select_related("attempt").filter(pk=review_id).first()
        if review is None:
            raise NotFound(f"Review {review_id} does not exist.", field="review")
        attempt = Attempt.objects.select_for_update().select_related("quiz").get(pk=review.attempt_id)
        review = Review.objects.select_for_update().get(pk=review_id)
        if attempt.is_final:
            refusal = Conflict(
                f"The result of this attempt is already final ({attempt.get_status_display().lower()}); "
                "its grades can no longer change.",
                field="review",
            )
        elif review.status == ReviewStatus.GRADED and review.reviewer_id != reviewer.pk:
            refusal = Conflict(
                f"Another reviewer already graded this response {review.score}/5; the queue has moved on.",
                field="review",
            )
        else:
            review.status = ReviewStatus.GRADED
            review.score = score
            review.comment = comment.strip()
            review.reviewer = reviewer
            review.graded_at = now
            review.save()
            attempt_settle(attempt=attempt, now=now)
    if refusal:
        raise refusal
    return review


def qualification_grant(
    *, quiz: Quiz, annotator: User, granted_by: User, note: str = "", now: datetime | None = None
) -> Attempt:
    """Record a pass earned outside Preflab (annotators who qualified before it). Kept as an attempt."""
    if not granted_by.is_researcher:
        raise NotAllowed("Only researchers can record a qualification.")
    if not annotator.is_annotator:
        raise InvalidInput("Qualifications are recorded for annotators only.", field="annotator")
    now = now or clock.now()
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=annotator.pk).first()
        existing = Attempt.objects.filter(candidate=annotator, quiz__slug=quiz.slug, status=AttemptStatus.PASSED)
        if existing.exists():
            return existing.first()
        number = Attempt.objects.filter(candidate=annotator, quiz__slug=quiz.slug).count() + 1
        return Attempt.objects.create(
            quiz=quiz,
            candidate=annotator,
            number=number,
            status=AttemptStatus.PASSED,
            created_at=now,
            submitted_at=now,
            finished_at=now,
            granted_by=granted_by,
            note=note or "Qualification recorded by a researcher.",
            result={"passed": True, "granted": True, "reasons": [], "criteria": [], "sections": []},
        )
