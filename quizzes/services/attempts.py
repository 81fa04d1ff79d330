"""Attempts under time limits: starting an attempt and its sections, autosaving answers, submitting
a section, and closing what ran out.

Time: every deadline decision reads `quizzes.clock.now()` (or the `now=` a caller passes). The
server is the only judge of time: a section whose deadline has passed is closed "as it stands"
(with the answers saved before the deadline) the next time anything touches the attempt, and a
sweep (`attempts_expire_overdue`) does the same for candidates who never come back. Answers are
accepted until the deadline plus a small grace (PREFLAB_QUIZ_GRACE_SECONDS, default 5 s) for a
save that was already on the wire; the page stops taking input at the deadline itself.
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from accounts.models import User
from config.exceptions import Conflict, DomainError, Gone, InvalidInput, NotAllowed, NotFound

from .. import clock, scoring
from ..models import Answer, Attempt, AttemptSection, AttemptStatus, Question, Quiz, Review, Section, SectionStatus
from .results import attempt_settle


def _grace() -> timedelta:
    return timedelta(seconds=getattr(settings, "PREFLAB_QUIZ_GRACE_SECONDS", 5))


def _hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S UTC")


@dataclass(frozen=True)
class AttemptStart:
    attempt: Attempt
    created: bool


def _layout(quiz: Quiz, rng: random.Random) -> tuple[dict[str, list[int]], list[tuple[Section, list[int]]]]:
    """Per attempt: the question order of each section, and the display order of ranked and compared
    answers (always shuffled, so the order the author wrote them in never hints at the key)."""
    permutations: dict[str, list[int]] = {}
    orders = []
    for section in quiz.sections.order_by("position"):
        questions = list(section.questions.order_by("position"))
        ids = [q.pk for q in questions]
        if quiz.shuffle_questions:
            rng.shuffle(ids)
        orders.append((section, ids))
        for q in questions:
            if q.kind in scoring.PERMUTED_KINDS:
                perm = list(range(len(q.content["responses"])))
                rng.shuffle(perm)
                permutations[str(q.pk)] = perm
    return permutations, orders


def attempt_start(*, candidate: User, quiz: Quiz, now: datetime | None = None) -> AttemptStart:
    """Open a new attempt, or hand back the one in progress. Refuses beyond the attempt limit."""
    if not candidate.is_annotator:
        raise NotAllowed("Selection quizzes are taken by annotators and candidates.")
    if not quiz.is_published:
        raise NotFound(f"The quiz {quiz.title!r} is not open to candidates.")
    now = now or clock.now()
    with transaction.atomic():
        # Serialise one candidate's starts (double clicks, two tabs).
        User.objects.select_for_update().filter(pk=candidate.pk).first()
        attempts = list(Attempt.objects.filter(candidate=candidate, quiz__slug=quiz.slug).select_related("quiz"))
        for attempt in attempts:
            if attempt.status == AttemptStatus.IN_PROGRESS:
                _close_overdue(attempt, now)
                if attempt.status == AttemptStatus.IN_PROGRESS:
                    return AttemptStart(attempt=attempt, created=False)
        if any(a.status == AttemptStatus.PASSED for a in attempts):
            raise Conflict(f"You have already passed {quiz.title!r}; there is nothing more to take.")
        if any(a.status == AttemptStatus.AWAITING_REVIEW for a in attempts):
            raise Conflict(
                f"Your attempt at {quiz.title!r} is waiting for reviewers; its result comes before any new attempt."
            )
        taken = [a for a in attempts if a.granted_by_id is None]
        if len(taken) >= quiz.max_attempts:
            raise Conflict(
                f"You have used {len(taken)} of the {quiz.max_attempts} attempt{'s' if quiz.max_attempts > 1 else ''} "
                f"allowed at {quiz.title!r}; every attempt is kept. "
                "Ask your vendor manager if you think this is wrong.",
                field="attempts",
            )
        permutations, orders = _layout(quiz, random.Random())
        try:
            with transaction.atomic():
                attempt = Attempt.objects.create(
                    quiz=quiz,
                    candidate=candidate,
                    number=len(attempts) + 1,
                    created_at=now,
                    layout=permutations,
                )
        except IntegrityError:
            raise Conflict("Another attempt was started at the same moment; reload the page.") from None
        AttemptSection.objects.bulk_create(
            [
                AttemptSection(attempt=attempt, section=section, position=i, question_order=ids)
                for i, (section, ids) in enumerate(orders)
            ]
        )
        return AttemptStart(attempt=attempt, created=True)


def _locked_attempt(*, attempt_id: int, candidate: User) -> Attempt:
    attempt = Attempt.objects.select_for_update().select_related("quiz").filter(pk=attempt_id).first()
    if attempt is None:
        raise NotFound(f"Attempt {attempt_id} does not exist.", field="attempt")
    if attempt.candidate_id != candidate.pk:
        raise NotAllowed("This attempt belongs to another candidate.", field="attempt")
    return attempt


def _current_section(attempt: Attempt) -> AttemptSection | None:
    return (
        attempt.sections.exclude(status__in=[SectionStatus.SUBMITTED, SectionStatus.TIMED_OUT, SectionStatus.SKIPPED])
        .select_related("section")
        .order_by("position")
        .first()
    )


def _close_overdue(attempt: Attempt, now: datetime) -> bool:
    """Close, as they stand, the sections whose time ran out (the caller holds the attempt's lock)."""
    if attempt.status != AttemptStatus.IN_PROGRESS:
        return False
    grace = _grace()
    changed = False
    while (current := _current_section(attempt)) is not None:
        if current.status == SectionStatus.OPEN and current.deadline and now > current.deadline + grace:
            _close_section(attempt, current, SectionStatus.TIMED_OUT, at=current.deadline)
        elif attempt.deadline and now > attempt.deadline + grace:
            _close_section(attempt, current, SectionStatus.TIMED_OUT, at=attempt.deadline)
        else:
            break
        changed = True
    return changed


def attempt_refresh(*, attempt: Attempt, now: datetime | None = None) -> Attempt:
    """Bring an attempt up to date with the clock (close what ran out). Safe to call on every read."""
    now = now or clock.now()
    if attempt.status != AttemptStatus.IN_PROGRESS:
        return attempt
    with transaction.atomic():
        locked = Attempt.objects.select_for_update().select_related("quiz").get(pk=attempt.pk)
        _close_overdue(locked, now)
    return locked


def attempts_expire_overdue(*, now: datetime | None = None) -> int:
    """Close every section that ran out, for candidates who never came back. Run by the reconciler
    (core.jobs) every PREFLAB_RECONCILE_SECONDS; the pages only read."""
    now = now or clock.now()
    grace = _grace()
    overdue = (
        Attempt.objects.filter(status=AttemptStatus.IN_PROGRESS)
        .filter(
            Q(deadline__lt=now - grace) | Q(sections__status=SectionStatus.OPEN, sections__deadline__lt=now - grace)
        )
        .values_list("pk", flat=True)
        .distinct()
    )
    closed = 0
    for attempt_id in list(overdue[:500]):
        with transaction.atomic():
            attempt = Attempt.objects.select_for_update().select_related("quiz").get(pk=attempt_id)
            closed += int(_close_overdue(attempt, now))
    return closed


def section_start(*, candidate: User, attempt_id: int, now: datetime | None = None) -> AttemptSection:
    """Start the attempt's next section (its timer starts now). Starting an open section is harmless."""
    now = now or clock.now()
    refusal: DomainError | None = None
    with transaction.atomic():
        attempt = _locked_attempt(attempt_id=attempt_id, candidate=candidate)
        _close_overdue(attempt, now)
        current = _current_section(attempt) if attempt.status == AttemptStatus.IN_PROGRESS else None
        if current is None:
            refusal = Conflict("This attempt has no section left to start; see its result.", field="attempt")
        elif current.status == SectionStatus.PENDING:
            if attempt.started_at is None:
                attempt.started_at = now
                if attempt.quiz.time_limit_minutes:
                    attempt.deadline = now + timedelta(minutes=attempt.quiz.time_limit_minutes)
                attempt.save(update_fields=["started_at", "deadline"])
            limits = [attempt.deadline] if attempt.deadline else []
            if current.section.time_limit_minutes:
                limits.append(now + timedelta(minutes=current.section.time_limit_minutes))
            current.status = SectionStatus.OPEN
            current.started_at = now
            current.deadline = min(limits) if limits else None
            current.save(update_fields=["status", "started_at", "deadline"])
    if refusal:
        raise refusal
    return current


def _section_of_question(attempt: Attempt, question_id: int) -> tuple[Question, AttemptSection]:
    question = Question.objects.select_related("section").filter(pk=question_id).first()
    if question is None or question.section.quiz_id != attempt.quiz_id:
        raise InvalidInput(
            f"Question {question_id} is not part of attempt {attempt.pk}; answer the questions this attempt shows.",
            field="question",
        )
    return question, attempt.sections.select_related("section").get(section_id=question.section_id)


@dataclass(frozen=True)
class SavedAnswer:
    answer: Answer
    permutation: list[int] | None
    stale: bool  # a later save had already arrived; this one changed nothing


def answer_save(
    *,
    candidate: User,
    attempt_id: int,
    question_id: int,
    value: Any,
    seq: int | None = None,
    now: datetime | None = None,
) -> SavedAnswer:
    """Save the candidate's answer to one question of the open section (autosave: called on every change).

    `value` is in the order the candidate sees (see scoring.from_display). `seq` orders saves from one
    page: a save that arrives after a later one is ignored, so a slow request never overwrites newer
    text. After the deadline (plus the grace) the section is closed as it stands and the save refused.
    """
    now = now or clock.now()
    refusal: DomainError | None = None
    saved: SavedAnswer | None = None
    with transaction.atomic():
        attempt = _locked_attempt(attempt_id=attempt_id, candidate=candidate)
        _close_overdue(attempt, now)
        question, section = _section_of_question(attempt, question_id)
        title = section.section.title
        if section.status == SectionStatus.TIMED_OUT:
            refusal = Gone(
                f"Time ran out for {title!r} at {_hhmm(section.closed_at)}; answers sent after the deadline are not "
                "accepted. Everything saved before it was submitted.",
                field="deadline",
            )
        elif section.status in (SectionStatus.SUBMITTED, SectionStatus.SKIPPED):
            refusal = Conflict(f"{title!r} was already submitted; its answers can no longer change.", field="question")
        elif section.status == SectionStatus.PENDING:
            refusal = Conflict(f"{title!r} has not started yet; start it first.", field="question")
        else:
            permutation = attempt.layout.get(str(question.pk))
            try:
                canonical = scoring.clean_answer(
                    question.kind, question.content, scoring.from_display(question.kind, permutation, value)
                )
            except scoring.AnswerError as exc:
                raise InvalidInput(str(exc), field="value") from None
            answer = Answer.objects.filter(attempt=attempt, question=question).first()
            if answer is not None and seq is not None and seq <= answer.client_seq:
                saved = SavedAnswer(answer=answer, permutation=permutation, stale=True)
            else:
                if answer is None:
                    answer = Answer(attempt=attempt, question=question)
                answer.value = canonical
                answer.client_seq = seq if seq is not None else answer.client_seq
                answer.saved_at = now
                answer.save()
                saved = SavedAnswer(answer=answer, permutation=permutation, stale=False)
    if refusal:
        raise refusal
    return saved


def _incomplete(attempt: Attempt, section: AttemptSection) -> dict[str, Any]:
    questions = list(Question.objects.filter(section=section.section))
    answers = {a.question_id: a.value for a in Answer.objects.filter(attempt=attempt, question__in=questions)}
    unanswered = [q.pk for q in questions if q.kind != scoring.FREE_WRITING and not answers.get(q.pk)]
    incomplete = [
        q.pk
        for q in questions
        if q.kind in (scoring.RANK, scoring.COMPARE)
        and answers.get(q.pk)
        and not scoring.is_complete(q.kind, q.content, answers[q.pk])
    ]
    short = [
        {
            "question": q.pk,
            "written": len(scoring.written_responses(answers.get(q.pk))),
            "required": q.content["min_choices"],
        }
        for q in questions
        if q.kind == scoring.FREE_WRITING
        and len(scoring.written_responses(answers.get(q.pk))) < q.content["min_choices"]
    ]
    return {"unanswered": unanswered, "incomplete": incomplete, "writing_short": short}


def section_submit(
    *, candidate: User, attempt_id: int, confirm_incomplete: bool = False, now: datetime | None = None
) -> Attempt:
    """Submit the open section. With questions left unanswered (or fewer written responses than a
    question's minimum) it is refused unless `confirm_incomplete`, so nobody submits half by accident."""
    now = now or clock.now()
    refusal: DomainError | None = None
    with transaction.atomic():
        attempt = _locked_attempt(attempt_id=attempt_id, candidate=candidate)
        timed_out = _close_overdue(attempt, now)
        current = _current_section(attempt) if attempt.status == AttemptStatus.IN_PROGRESS else None
        if timed_out:
            refusal = Gone(
                "Time ran out before this submit arrived; the section was submitted with the answers saved before "
                "the deadline.",
                field="deadline",
            )
        elif current is None or current.status != SectionStatus.OPEN:
            refusal = Conflict("There is no open section to submit in this attempt.", field="attempt")
        else:
            missing = _incomplete(attempt, current)
            if not confirm_incomplete and any(missing.values()):
                parts = []
                if missing["unanswered"] or missing["incomplete"]:
                    n = len(missing["unanswered"]) + len(missing["incomplete"])
                    parts.append(f"{n} question{'s are' if n > 1 else ' is'} not fully answered")
                for short in missing["writing_short"]:
                    parts.append(f"you wrote {short['written']} of the {short['required']} responses required")
                sentence = "; ".join(parts)
                refusal = InvalidInput(
                    f"{sentence[0].upper()}{sentence[1:]}. Submit again with confirm_incomplete to submit as it stands "
                    "(missing answers count as not agreed).",
                    field="confirm_incomplete",
                    extra=missing,
                )
            else:
                _close_section(attempt, current, SectionStatus.SUBMITTED, at=now)
    if refusal:
        raise refusal
    return attempt


def _close_section(attempt: Attempt, section: AttemptSection, status: str, *, at: datetime) -> None:
    """Score a section as it stands: auto-scored answers agreed or not, written responses queued for review."""
    section.status = status
    section.closed_at = at
    section.save(update_fields=["status", "closed_at"])
    questions = list(Question.objects.filter(section=section.section))
    answers = {a.question_id: a for a in Answer.objects.filter(attempt=attempt, question__in=questions)}
    reviews = []
    for question in questions:
        answer = answers.get(question.pk)
        if question.is_auto_scored:
            if answer is not None:
                answer.agreed = scoring.agrees(
                    question.kind, question.content, question.key, question.scoring, answer.value
                )
                answer.save(update_fields=["agreed"])
        elif answer is not None:
            reviews += [
                Review(answer=answer, attempt=attempt, prompt_index=index, text=text, created_at=at)
                for index, text in sorted(scoring.written_responses(answer.value).items())
            ]
    Review.objects.bulk_create(reviews)
    attempt_settle(attempt=attempt, now=at)
