"""Writes of the annotation protocol: leasing comparisons, submitting ratings, majority labels.

Concurrency: every change to a comparison's counters happens under that comparison's row lock
(SELECT ... FOR UPDATE), and "next comparison" takes candidate rows with SKIP LOCKED, so two
annotators never both take the last slot and a comparison never gets more than `overlap` ratings.
On SQLite the same code is serialised by the database write lock (IMMEDIATE transactions).
"""

import random
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from accounts.models import User
from config.exceptions import Conflict, Gone, InvalidInput, NotAllowed, NotFound

from . import selectors
from .models import (
    Assignment,
    AssignmentStatus,
    Batch,
    Comparison,
    ComparisonStatus,
    Focus,
    Rating,
    SafetyLabel,
    Side,
    Strength,
)
from .voting import Ballot, majority_label


def _max_live_leases() -> int:
    # One pair on screen and one prefetched, so the next pair is ready before it is asked for.
    return getattr(settings, "PREFLAB_MAX_LEASES_PER_ANNOTATOR", 2)


def release_expired_leases(*, batch: Batch | None = None, now=None) -> int:
    """Return expired leases' slots to the pool. Safe to run concurrently and repeatedly."""
    now = now or timezone.now()
    expired = Assignment.objects.filter(status=AssignmentStatus.LEASED, expires_at__lt=now)
    if batch is not None:
        expired = expired.filter(comparison__batch=batch)
    released = 0
    for assignment_id, comparison_id in expired.values_list("id", "comparison_id")[:500]:
        with transaction.atomic():
            # The conditional update is the claim: of two concurrent sweepers only one changes the row.
            if Assignment.objects.filter(pk=assignment_id, status=AssignmentStatus.LEASED, expires_at__lt=now).update(
                status=AssignmentStatus.RELEASED
            ):
                Comparison.objects.filter(pk=comparison_id).update(slots_taken=F("slots_taken") - 1)
                released += 1
    return released


@dataclass(frozen=True)
class Lease:
    assignment: Assignment
    created: bool


def assignment_next(
    *, annotator: User, batch: Batch, exclude_ids: frozenset[int] = frozenset(), now=None
) -> Lease | None:
    """Hand the annotator a comparison of the batch, or return one they already hold.

    Live leases the annotator holds come back first (oldest first, skipping `exclude_ids`, the
    pairs the page already shows), so a reload shows the same pair with the same sides. Otherwise
    a new lease is taken on the open comparison with the most ratings, so pairs are finished
    before new ones are opened. Returns None when the batch has nothing left for this annotator.
    """
    refusal = selectors.batch_refusal_for(annotator, batch)
    if refusal:
        raise NotAllowed(refusal)
    now = now or timezone.now()
    release_expired_leases(batch=batch, now=now)

    with transaction.atomic():
        # Serialise one annotator's own requests (double clicks, two tabs) without touching others'.
        User.objects.select_for_update().filter(pk=annotator.pk).first()
        held = list(
            Assignment.objects.filter(
                annotator=annotator,
                comparison__batch=batch,
                status=AssignmentStatus.LEASED,
                expires_at__gte=now,
            ).order_by("leased_at", "id")
        )
        for assignment in held:
            if assignment.id not in exclude_ids:
                return Lease(assignment=assignment, created=False)
        if len(held) >= _max_live_leases():
            return None

        already_assigned = Assignment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)
        comparison = (
            Comparison.objects.filter(batch=batch, status=ComparisonStatus.OPEN, slots_taken__lt=batch.overlap)
            .filter(~Exists(already_assigned))
            .order_by("-rating_count", "id")
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if comparison is None:
            return None
        Comparison.objects.filter(pk=comparison.pk).update(slots_taken=F("slots_taken") + 1)
        expires_at = now + timedelta(minutes=batch.lease_minutes)
        assignment, _created = Assignment.objects.update_or_create(
            comparison=comparison,
            annotator=annotator,
            defaults={"status": AssignmentStatus.LEASED, "leased_at": now, "expires_at": expires_at},
            create_defaults={
                "status": AssignmentStatus.LEASED,
                "leased_at": now,
                "expires_at": expires_at,
                "swapped": random.random() < 0.5,
            },
        )
        return Lease(assignment=assignment, created=True)


@dataclass(frozen=True)
class RatingResult:
    rating: Rating
    created: bool


def _validate_rating(*, batch: Batch, strength: str, safety_label: str) -> None:
    if not strength:
        raise InvalidInput("Choose how much better the chosen response is (one of the four levels).", field="strength")
    if strength not in Strength.values:
        raise InvalidInput(
            f"Unknown strength {strength!r}; use one of: {', '.join(Strength.values)}.", field="strength"
        )
    if batch.focus == Focus.SAFETY:
        if not safety_label:
            raise InvalidInput(
                "This is a safety batch: give the safety label "
                "(chosen safe and other unsafe, both safe, or both unsafe).",
                field="safety_label",
            )
        if safety_label not in SafetyLabel.values:
            raise InvalidInput(
                f"Unknown safety label {safety_label!r}; use one of: {', '.join(SafetyLabel.values)}. "
                "A chosen response that is unsafe while the other is safe cannot be submitted: "
                "choose the safe response instead.",
                field="safety_label",
            )
    elif safety_label:
        raise InvalidInput("Safety labels are only given in safety batches; leave it empty here.", field="safety_label")


def rating_submit(
    *,
    annotator: User,
    assignment_id: int,
    chosen_response_id: int,
    strength: str,
    safety_label: str = "",
    rationale: str = "",
    seconds_spent: float | None = None,
    idempotency_key: str,
    now=None,
) -> RatingResult:
    """Record a rating. A repeat with the same idempotency key returns the first rating unchanged."""
    if not idempotency_key or len(idempotency_key) > 64:
        raise InvalidInput("Send an idempotency key of 1 to 64 characters with every rating.", field="idempotency_key")
    existing = Rating.objects.filter(annotator=annotator, idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.assignment_id != assignment_id:
            raise Conflict(
                "This idempotency key was already used for another pair; send a new key.", field="idempotency_key"
            )
        return RatingResult(rating=existing, created=False)
    if seconds_spent is not None and seconds_spent < 0:
        raise InvalidInput("Seconds spent cannot be negative.", field="seconds_spent")
    now = now or timezone.now()

    try:
        with transaction.atomic():
            assignment = (
                Assignment.objects.select_for_update()
                .select_related("comparison__batch")
                .filter(pk=assignment_id)
                .first()
            )
            if assignment is None:
                raise NotFound("This pair does not exist.", field="assignment")
            if assignment.annotator_id != annotator.pk:
                raise NotAllowed(
                    "This pair was handed to another annotator; ask for your next pair.", field="assignment"
                )
            comparison = Comparison.objects.select_for_update().get(pk=assignment.comparison_id)
            batch = assignment.comparison.batch
            if assignment.status == AssignmentStatus.SUBMITTED:
                first = assignment.rating
                if first.idempotency_key == idempotency_key:
                    return RatingResult(rating=first, created=False)
                raise Conflict("You have already rated this pair; your first rating stands.", field="assignment")
            if assignment.status == AssignmentStatus.RELEASED or assignment.expires_at < now:
                raise Gone(
                    f"Your lease on this pair expired after {batch.lease_minutes} minutes and the pair went back "
                    "to the pool; load your next pair.",
                    field="assignment",
                )
            chosen = {comparison.response_a_id: Side.A, comparison.response_b_id: Side.B}.get(chosen_response_id)
            if chosen is None:
                raise InvalidInput(
                    "The chosen response is not one of this pair's two responses.", field="chosen_response"
                )
            _validate_rating(batch=batch, strength=strength, safety_label=safety_label)
            rating = Rating.objects.create(
                assignment=assignment,
                comparison=comparison,
                annotator=annotator,
                chosen=chosen,
                strength=strength,
                safety_label=safety_label,
                rationale=rationale.strip(),
                seconds_spent=seconds_spent,
                shown_left=assignment.left_side,
                idempotency_key=idempotency_key,
            )
            assignment.status = AssignmentStatus.SUBMITTED
            assignment.save(update_fields=["status"])
            # The lease already holds this rating's slot, so slots_taken stays as it is.
            comparison_label_refresh(comparison=comparison, now=now)
            return RatingResult(rating=rating, created=True)
    except IntegrityError:
        # A concurrent twin with the same key won the race: answer with its rating.
        twin = Rating.objects.filter(annotator=annotator, idempotency_key=idempotency_key).first()
        if twin is not None and twin.assignment_id == assignment_id:
            return RatingResult(rating=twin, created=False)
        raise Conflict("You have already rated this pair; your first rating stands.", field="assignment") from None


def comparison_label_refresh(*, comparison: Comparison, now=None) -> Comparison:
    """Recompute a comparison's majority label from its ratings. Idempotent."""
    batch = comparison.batch
    ratings = list(comparison.ratings.values_list("chosen", "strength", "safety_label"))
    count = len(ratings)
    fields = {"rating_count": count}
    if count >= batch.overlap:
        label = majority_label([Ballot(chosen=c, strength=s, safety_label=sl) for c, s, sl in ratings])
        fields.update(
            status=ComparisonStatus.COMPLETE,
            label_choice=label.choice,
            label_strength=label.strength,
            label_safety=label.safety_label,
            label_vote=label.vote,
            labelled_at=now or timezone.now(),
        )
    else:
        fields.update(
            status=ComparisonStatus.OPEN,
            label_choice="",
            label_strength="",
            label_safety="",
            label_vote="",
            labelled_at=None,
        )
    Comparison.objects.filter(pk=comparison.pk).update(**fields)
    for name, value in fields.items():
        setattr(comparison, name, value)
    return comparison


def batch_create(
    *,
    name: str,
    focus: str,
    created_by: User | None,
    overlap: int = 3,
    guidelines: str = "",
    prompt_mode: str = "pool",
    lease_minutes: int = 10,
    week=None,
) -> Batch:
    if Batch.objects.filter(name=name).exists():
        raise Conflict(f"A batch named {name!r} already exists; pick another name.", field="name")
    if overlap < 1:
        raise InvalidInput("Overlap must be at least 1 rating per comparison.", field="overlap")
    today = timezone.localdate()
    week = week or today - timedelta(days=today.weekday())
    return Batch.objects.create(
        name=name,
        focus=focus,
        overlap=overlap,
        guidelines=guidelines,
        prompt_mode=prompt_mode,
        lease_minutes=lease_minutes,
        week=week,
        created_by=created_by,
    )


def _variants_by_name(names: set[str], created_by: User | None) -> dict:
    """The newest version of each named variant; unknown names are registered as imported variants."""
    from sampling.models import Backend, ModelVariant

    found: dict[str, ModelVariant] = {}
    for variant in ModelVariant.objects.filter(name__in=names).order_by("name", "-version"):
        found.setdefault(variant.name, variant)
    for name in sorted(names - found.keys()):
        found[name] = ModelVariant.objects.create(
            name=name,
            backend=Backend.EXTERNAL,
            description="Registered by a comparison import; its responses were not sampled by Preflab.",
            created_by=created_by,
        )
    return found


def prompts_import(*, batch: Batch, source, created_by: User | None = None) -> int:
    """Add prompts to a batch's pool from JSONL. All lines validate, or nothing is written."""
    from .importing import ImportFileError, parse_prompts
    from .models import Prompt

    try:
        parsed = parse_prompts(source)
    except ImportFileError as exc:
        raise InvalidInput(str(exc), field="file", extra={"errors": exc.errors}) from None
    with transaction.atomic():
        Prompt.objects.bulk_create([Prompt(batch=batch, text=p.text, tags=p.tags) for p in parsed], batch_size=1000)
    return len(parsed)


def comparisons_import(*, batch: Batch, source, created_by: User | None = None) -> int:
    """Add ready-made comparisons to a batch from JSONL. All lines validate, or nothing is written."""
    from .importing import ImportFileError, parse_comparisons
    from .models import Dialogue, Response, Turn

    try:
        parsed = parse_comparisons(source)
    except ImportFileError as exc:
        raise InvalidInput(str(exc), field="file", extra={"errors": exc.errors}) from None
    with transaction.atomic():
        variants = _variants_by_name({r.variant for c in parsed for r in c.responses}, created_by)
        dialogues = Dialogue.objects.bulk_create([Dialogue(batch=batch, created_by=created_by) for _ in parsed])
        turns, responses = [], []
        for item, dialogue in zip(parsed, dialogues, strict=True):
            turns += [
                Turn(dialogue=dialogue, index=i, role=t["role"], content=t["content"])
                for i, t in enumerate(item.dialogue)
            ]
            for r in item.responses:
                responses.append(
                    Response(
                        text=r.text,
                        variant=variants[r.variant],
                        temperature=r.temperature,
                        top_p=r.top_p,
                        max_new_tokens=r.max_new_tokens,
                        generation={"source": "import", "line": item.line, "tags": item.tags},
                    )
                )
        Turn.objects.bulk_create(turns, batch_size=2000)
        responses = Response.objects.bulk_create(responses, batch_size=2000)
        Comparison.objects.bulk_create(
            [
                Comparison(
                    batch=batch,
                    dialogue=dialogue,
                    context_length=len(item.dialogue),
                    response_a=responses[2 * i],
                    response_b=responses[2 * i + 1],
                )
                for i, (item, dialogue) in enumerate(zip(parsed, dialogues, strict=True))
            ],
            batch_size=2000,
        )
    return len(parsed)
