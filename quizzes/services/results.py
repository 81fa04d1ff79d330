"""An attempt's result: the tallies of its sections, the verdict of the quiz's criteria, and the
result payload stored on the attempt. Shared by attempts (a section closes) and reviews (a grade
arrives); the caller holds the attempt's row lock."""

from datetime import datetime

from .. import scoring
from ..models import FINAL_STATUSES, Answer, Attempt, AttemptStatus, Question, Review, ReviewStatus, SectionStatus


def _tallies(attempt: Attempt) -> tuple[dict[str, scoring.SectionTally], list[scoring.Shortfall], list]:
    sections = list(attempt.sections.select_related("section").order_by("position"))
    questions = list(Question.objects.filter(section__quiz_id=attempt.quiz_id).select_related("section"))
    answers = {a.question_id: a for a in Answer.objects.filter(attempt=attempt)}
    reviews = list(Review.objects.filter(attempt=attempt).select_related("answer"))
    tallies, shortfalls = {}, []
    for row in sections:
        mine = [q for q in questions if q.section_id == row.section_id]
        auto = [q for q in mine if q.is_auto_scored]
        section_reviews = [r for r in reviews if r.answer.question_id in {q.pk for q in mine}]
        tallies[row.section.key] = scoring.SectionTally(
            key=row.section.key,
            closed=row.is_closed,
            auto_total=len(auto),
            auto_agreed=sum(1 for q in auto if answers.get(q.pk) and answers[q.pk].agreed),
            grades=tuple(r.score for r in section_reviews if r.status == ReviewStatus.GRADED),
            grades_pending=sum(1 for r in section_reviews if r.status == ReviewStatus.PENDING),
        )
        if row.status in (SectionStatus.SUBMITTED, SectionStatus.TIMED_OUT):
            for position, q in enumerate(mine):
                if q.kind != scoring.FREE_WRITING:
                    continue
                written = len(scoring.written_responses(answers[q.pk].value if q.pk in answers else None))
                if written < q.content["min_choices"]:
                    shortfalls.append(
                        scoring.Shortfall(
                            f"{row.section.title}, question {position + 1}", written, q.content["min_choices"]
                        )
                    )
    return tallies, shortfalls, sections


def attempt_settle(*, attempt: Attempt, now: datetime) -> None:
    """Re-evaluate the attempt: skip later sections after a failed gate, and make the result final
    as soon as it cannot change."""
    criteria = [c.as_rule() for c in attempt.quiz.criteria.order_by("position")]
    tallies, shortfalls, sections = _tallies(attempt)
    verdict = scoring.evaluate(criteria, tallies, shortfalls)
    all_closed = all(s.is_closed for s in sections)
    if verdict.gate_failed and not all_closed:
        for row in sections:
            if not row.is_closed:
                row.status, row.closed_at = SectionStatus.SKIPPED, now
                row.save(update_fields=["status", "closed_at"])
        tallies, shortfalls, sections = _tallies(attempt)
        verdict = scoring.evaluate(criteria, tallies, shortfalls)
        all_closed = True
    fields = ["result"]
    if all_closed:
        if attempt.submitted_at is None:
            attempt.submitted_at = now
            fields.append("submitted_at")
        if verdict.passed is None:
            attempt.status = AttemptStatus.AWAITING_REVIEW
        else:
            attempt.status = AttemptStatus.PASSED if verdict.passed else AttemptStatus.FAILED
            attempt.finished_at = now
            fields.append("finished_at")
            # The result can no longer change: nobody needs to grade what is left.
            if Review.objects.filter(attempt=attempt, status=ReviewStatus.PENDING).update(
                status=ReviewStatus.NOT_NEEDED
            ):
                tallies, _, sections = _tallies(attempt)  # the section scores no longer wait for anyone
        fields.append("status")
    attempt.result = _result_payload(verdict, tallies, sections, final=attempt.status in FINAL_STATUSES)
    attempt.save(update_fields=fields)


def _result_payload(verdict: scoring.Verdict, tallies: dict, sections: list, *, final: bool) -> dict:
    autos = {key: t.auto_total for key, t in tallies.items()}
    return {
        "passed": verdict.passed,
        "reasons": list(verdict.reasons),
        "gate_failed": verdict.gate_failed,
        "criteria": [
            {
                "label": r.criterion.label,
                "rule": r.criterion.describe(sum(autos[k] for k in r.criterion.sections)),
                "value": None if r.value is None else round(r.value, 2),
                "passed": r.passed,
                "note": "not scored: the result was already decided" if final and r.passed is None else r.note,
            }
            for r in verdict.criteria
        ],
        "sections": [
            {
                "key": row.section.key,
                "title": row.section.title,
                "status": row.status,
                "auto_total": tallies[row.section.key].auto_total,
                "auto_agreed": tallies[row.section.key].auto_agreed,
                "percent_agreed": _round(tallies[row.section.key].percent_agreed),
                "grades": len(tallies[row.section.key].grades),
                "grades_pending": tallies[row.section.key].grades_pending,
                "average_grade": _round(tallies[row.section.key].average_grade),
            }
            for row in sections
        ],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
