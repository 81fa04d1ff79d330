"""Writes of the selection quizzes: authoring and import, attempts under time limits, reviews,
qualification, and vendors' invitations.

Time: every deadline decision reads `quizzes.clock.now()` (or the `now=` a caller passes). The
server is the only judge of time: a section whose deadline has passed is closed "as it stands"
(with the answers saved before the deadline) the next time anything touches the attempt, and a
sweep (`attempts_expire_overdue`) does the same for candidates who never come back. Answers are
accepted until the deadline plus a small grace (PREFLAB_QUIZ_GRACE_SECONDS, default 5 s) for a
save that was already on the wire; the page stops taking input at the deadline itself.

Concurrency: every change to an attempt happens under its row lock (SELECT ... FOR UPDATE), so
a save racing the deadline, two tabs, or two reviewers grading the last answer settle once.
"""

import csv
import io
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.crypto import get_random_string

from accounts.models import Role, User, Vendor
from annotation.models import Batch
from config.exceptions import Conflict, DomainError, Gone, InvalidInput, NotAllowed, NotFound

from . import clock, schema, scoring
from .documents import CONTENT_FIELDS, SCORING_FIELDS, quiz_document
from .models import (
    FINAL_STATUSES,
    Answer,
    Attempt,
    AttemptSection,
    AttemptStatus,
    BatchRequirement,
    Criterion,
    Invitation,
    Question,
    Quiz,
    Review,
    ReviewStatus,
    Section,
    SectionStatus,
)

LLAMA2_TEMPLATE = Path(__file__).resolve().parent / "fixtures" / "llama2_selection.json"
MAX_INVITATIONS_PER_REQUEST = 500


def _grace() -> timedelta:
    return timedelta(seconds=getattr(settings, "PREFLAB_QUIZ_GRACE_SECONDS", 5))


def _invitation_lifetime() -> timedelta:
    return timedelta(days=getattr(settings, "PREFLAB_INVITATION_DAYS", 14))


def _hhmm(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S UTC")


# ================================================================ authoring


def _create_quiz(*, data: dict, created_by: User | None, publish: bool) -> Quiz:
    latest = Quiz.objects.filter(slug=data["slug"]).order_by("-version").first()
    quiz = Quiz.objects.create(
        slug=data["slug"],
        version=latest.version + 1 if latest else 1,
        title=data["title"],
        description=data["description"],
        time_limit_minutes=data["time_limit_minutes"],
        max_attempts=data["max_attempts"],
        shuffle_questions=data["shuffle_questions"],
        show_section_scores=data["show_section_scores"],
        required_for_focus=data["required_for_focus"],
        is_published=publish,
        created_by=created_by,
    )
    questions = []
    for s_position, s in enumerate(data["sections"]):
        section = Section.objects.create(
            quiz=quiz,
            position=s_position,
            key=s["key"],
            title=s["title"],
            instructions=s["instructions"],
            time_limit_minutes=s["time_limit_minutes"],
        )
        for q_position, q in enumerate(s["questions"]):
            kind = q["kind"]
            questions.append(
                Question(
                    section=section,
                    position=q_position,
                    kind=kind,
                    text=q["text"],
                    content={name: q[name] for name in CONTENT_FIELDS[kind]},
                    key=q.get("answer"),
                    scoring={name: q[name] for name in SCORING_FIELDS[kind]},
                    rubric=q.get("rubric", ""),
                )
            )
    Question.objects.bulk_create(questions)
    Criterion.objects.bulk_create(
        [
            Criterion(
                quiz=quiz,
                position=i,
                label=c["label"],
                section_keys=c["sections"],
                measure=c["measure"],
                op=c["op"],
                threshold=c["threshold"],
                gate=c["gate"],
            )
            for i, c in enumerate(data["criteria"])
        ]
    )
    return quiz


def _parse_json(source: Any) -> Any:
    if isinstance(source, bytes | bytearray):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("The quiz file must be UTF-8 text.", field="document") from None
    if isinstance(source, str):
        try:
            return json.loads(source)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"The quiz file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                field="document",
            ) from None
    return source


def quizzes_import(*, document: Any, created_by: User | None, publish: bool = False) -> list[Quiz]:
    """Create quizzes from the JSON format (text, bytes or parsed). The whole document validates, or
    nothing is written. A slug that exists gets its next version; older versions stay as they were."""
    parsed = _parse_json(document)
    try:
        normalised = schema.validate_document(parsed)
    except schema.QuizFormatError as exc:
        raise InvalidInput(str(exc), field="document", extra={"errors": exc.errors}) from None
    with transaction.atomic():
        return [_create_quiz(data=data, created_by=created_by, publish=publish) for data in normalised]


def llama2_template_load(*, created_by: User | None, publish: bool = True, if_missing: bool = True) -> list[Quiz]:
    """The four Llama 2 selection tests with the paper's thresholds. With `if_missing`, quizzes whose
    slug already exists are left alone (and returned), so loading twice adds nothing."""
    document = json.loads(LLAMA2_TEMPLATE.read_text(encoding="utf-8"))
    with transaction.atomic():
        if if_missing:
            existing = {q.slug: q for q in Quiz.objects.order_by("slug", "version")}
            missing = [q for q in document["quizzes"] if q["slug"] not in existing]
            created = (
                quizzes_import(document={"quizzes": missing}, created_by=created_by, publish=publish) if missing else []
            )
            by_slug = {q.slug: q for q in created}
            return [
                by_slug.get(q["slug"]) or Quiz.objects.filter(slug=q["slug"]).order_by("-version").first()
                for q in document["quizzes"]
            ]
        return quizzes_import(document=document, created_by=created_by, publish=publish)


SETTING_FIELDS = (
    "title",
    "description",
    "time_limit_minutes",
    "max_attempts",
    "shuffle_questions",
    "show_section_scores",
    "required_for_focus",
)


def quiz_settings_update(
    *,
    quiz: Quiz,
    changes: dict[str, Any],
    criteria: dict[int, dict[str, Any]] | None = None,
    section_time_limits: dict[int, int | None] | None = None,
) -> Quiz:
    """Change a quiz's settings, thresholds and time limits in place (its questions stay as they are;
    change those by importing a new version). Checked with the same rules as an import.

    Thresholds apply to every result decided after the change, including attempts waiting for review.
    """
    unknown = set(changes) - set(SETTING_FIELDS) - {"is_published"}
    if unknown:
        raise InvalidInput(f"Unknown setting(s): {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    document = quiz_document(quiz)
    document.update({k: v for k, v in changes.items() if k != "is_published"})
    criteria_rows = list(quiz.criteria.order_by("position"))
    for criterion_id, values in (criteria or {}).items():
        index = next((i for i, c in enumerate(criteria_rows) if c.pk == criterion_id), None)
        if index is None:
            raise NotFound(f"Criterion {criterion_id} is not part of this quiz.", field="criteria")
        document["criteria"][index].update({k: v for k, v in values.items() if k in ("threshold", "op", "label")})
    sections = list(quiz.sections.order_by("position"))
    for section_id, limit in (section_time_limits or {}).items():
        index = next((i for i, s in enumerate(sections) if s.pk == section_id), None)
        if index is None:
            raise NotFound(f"Section {section_id} is not part of this quiz.", field="sections")
        document["sections"][index]["time_limit_minutes"] = limit
    try:
        (checked,) = schema.validate_document(document)
    except schema.QuizFormatError as exc:
        raise InvalidInput(str(exc), field="settings", extra={"errors": exc.errors}) from None
    with transaction.atomic():
        for name in SETTING_FIELDS:
            setattr(quiz, name, checked[name])
        if "is_published" in changes:
            quiz.is_published = bool(changes["is_published"])
        quiz.save()
        for row, values in zip(criteria_rows, checked["criteria"], strict=True):
            if (row.threshold, row.op, row.label) != (values["threshold"], values["op"], values["label"]):
                row.threshold, row.op, row.label = values["threshold"], values["op"], values["label"]
                row.save(update_fields=["threshold", "op", "label"])
        for row, values in zip(sections, checked["sections"], strict=True):
            if row.time_limit_minutes != values["time_limit_minutes"]:
                row.time_limit_minutes = values["time_limit_minutes"]
                row.save(update_fields=["time_limit_minutes"])
    return quiz


def batch_requirement_add(*, batch: Batch, quiz: Quiz) -> BatchRequirement:
    requirement, _ = BatchRequirement.objects.get_or_create(batch=batch, quiz=quiz)
    return requirement


def batch_requirement_remove(*, batch: Batch, quiz: Quiz) -> int:
    deleted, _ = BatchRequirement.objects.filter(batch=batch, quiz__slug=quiz.slug).delete()
    return deleted


# ================================================================ attempts


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
    (core.jobs) and before the review queue and vendor pages are read."""
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
    _settle(attempt, at)


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


def _settle(attempt: Attempt, now: datetime) -> None:
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


# ================================================================ reviews and qualification


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
            _settle(attempt, now)
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


# ================================================================ invitations


def _may_invite(user: User, vendor: Vendor) -> None:
    if user.is_researcher:
        return
    if not (user.is_vendor_manager and user.vendor_id == vendor.pk):
        raise NotAllowed("Only this vendor's managers can invite its candidates.")


def invitations_create(
    *, invited_by: User, vendor: Vendor, emails: list[str], now: datetime | None = None
) -> list[Invitation]:
    """Invite people by e-mail: one secret link each. All addresses check out, or nothing is created.

    An address already invited to this vendor (and not expired) keeps its link; an address that
    already has an account is refused.
    """
    _may_invite(invited_by, vendor)
    now = now or clock.now()
    cleaned: list[str] = []
    errors: list[str] = []
    for position, raw in enumerate(emails, start=1):
        email = (raw or "").strip()
        try:
            validate_email(email)
        except DjangoValidationError:
            errors.append(f"entry {position}: {email!r} is not an e-mail address")
            continue
        if email.lower() not in {e.lower() for e in cleaned}:
            cleaned.append(email)
    if not cleaned and not errors:
        raise InvalidInput("Give at least one e-mail address to invite.", field="emails")
    if len(cleaned) > MAX_INVITATIONS_PER_REQUEST:
        raise InvalidInput(f"At most {MAX_INVITATIONS_PER_REQUEST} invitations at a time.", field="emails")
    taken = set(
        User.objects.annotate(email_lower=Lower("email"))
        .filter(email_lower__in=[e.lower() for e in cleaned])
        .values_list("email_lower", flat=True)
    )
    errors += [f"{email} already has a Preflab account" for email in cleaned if email.lower() in taken]
    if errors:
        raise InvalidInput(
            f"{len(errors)} address{'es' if len(errors) > 1 else ''} could not be invited, so none was: "
            + "; ".join(errors[:5]),
            field="emails",
            extra={"errors": errors},
        )
    invitations = []
    with transaction.atomic():
        for email in cleaned:
            live = (
                Invitation.objects.filter(
                    vendor=vendor, email__iexact=email, accepted_at__isnull=True, expires_at__gt=now
                )
                .order_by("-created_at")
                .first()
            )
            invitations.append(
                live
                or Invitation.objects.create(
                    vendor=vendor,
                    email=email,
                    token=get_random_string(40),
                    invited_by=invited_by,
                    created_at=now,
                    expires_at=now + _invitation_lifetime(),
                )
            )
    return invitations


def invitations_from_csv(*, invited_by: User, vendor: Vendor, source: bytes | str, now: datetime | None = None):
    """Invite every address in a CSV: a column named "email" if there is a header, else the first column."""
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("The CSV file must be UTF-8 text.", field="file") from None
    source = source.lstrip("\ufeff")
    rows = [row for row in csv.reader(io.StringIO(source)) if any(cell.strip() for cell in row)]
    if not rows:
        raise InvalidInput("The CSV file has no e-mail addresses.", field="file")
    header = [cell.strip().lower() for cell in rows[0]]
    column = 0
    if "email" in header or "e-mail" in header:
        column = header.index("email") if "email" in header else header.index("e-mail")
        rows = rows[1:]
    emails = [row[column] if column < len(row) else "" for row in rows]
    return invitations_create(invited_by=invited_by, vendor=vendor, emails=emails, now=now)


def invitation_accept(*, token: str, username: str, password: str, now: datetime | None = None) -> User:
    """Create the invited person's account: an annotator of the inviting vendor, a candidate until they pass."""
    now = now or clock.now()
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().select_related("vendor").filter(token=token).first()
        if invitation is None:
            raise NotFound("This invitation link is not valid; ask your vendor manager for a new one.", field="token")
        if invitation.accepted_at is not None:
            raise Conflict("This invitation was already used to create an account; log in instead.", field="token")
        if invitation.expires_at < now:
            raise Gone(
                f"This invitation expired on {invitation.expires_at:%Y-%m-%d}; ask your vendor manager for a new one.",
                field="token",
            )
        username = (username or "").strip()
        try:
            User.username_validator(username)
        except DjangoValidationError:
            raise InvalidInput("Choose a username of letters, digits and @ . + - _ only.", field="username") from None
        if not username or len(username) > 150:
            raise InvalidInput("Choose a username of 1 to 150 characters.", field="username")
        if User.objects.filter(username__iexact=username).exists():
            raise Conflict(f"The username {username!r} is taken; choose another.", field="username")
        user = User(username=username, email=invitation.email, role=Role.ANNOTATOR, vendor=invitation.vendor)
        try:
            validate_password(password, user)
        except DjangoValidationError as exc:
            raise InvalidInput(" ".join(exc.messages), field="password") from None
        user.set_password(password)
        user.save()
        invitation.accepted_at = now
        invitation.user = user
        invitation.save(update_fields=["accepted_at", "user"])
        return user
