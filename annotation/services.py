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
from django.db.models import Case, Exists, F, IntegerField, OuterRef, Value, When
from django.utils import timezone

from accounts.models import User
from config.exceptions import Conflict, Gone, InvalidInput, NotAllowed, NotFound

from . import selectors
from .models import (
    MAX_CHECK_RATE,
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
    Vote,
)
from .voting import STRENGTH_RANK, Ballot, majority_label

# A repeat never shows one of the annotator's most recent pairs (they would recognise it at once),
# and is drawn from their last REPEAT_WINDOW pairs, so finding one reads a bounded number of rows.
REPEAT_MIN_GAP = 5
REPEAT_WINDOW = 200
# Gold items offered are drawn from at most this many unseen ones (read through a partial index).
GOLD_SAMPLE = 200
_rng = random.Random()

# Time on one pair beyond a day is a clock or client error, and would skew the speed statistics.
MAX_SECONDS_SPENT = 86_400


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
    *,
    annotator: User,
    batch: Batch,
    exclude_ids: frozenset[int] = frozenset(),
    now=None,
    rng: random.Random | None = None,
) -> Lease | None:
    """Hand the annotator a comparison of the batch, or return one they already hold.

    Live leases the annotator holds come back first (oldest first, skipping `exclude_ids`, the
    pairs the page already shows), so a reload shows the same pair with the same sides. Otherwise
    a new lease is taken on the open comparison with the most ratings, so pairs are finished
    before new ones are opened. Returns None when the batch has nothing left for this annotator.

    Quality checks are mixed in at the batch's rates: with probability `gold_rate` a gold
    comparison the annotator has not seen, with probability `repeat_rate` one of their earlier
    pairs again with A and B exchanged (see `_swapped_repeat`). When there is no such item the
    ordinary queue serves. `rng` makes the draws reproducible in tests.
    """
    rng = rng or _rng
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

        comparison, swapped = None, None
        roll = rng.random() if batch.gold_rate or batch.repeat_rate else 1.0
        if roll < batch.gold_rate:
            comparison = _unseen_gold(annotator=annotator, batch=batch, rng=rng)
        elif roll < batch.gold_rate + batch.repeat_rate:
            comparison, swapped = _swapped_repeat(annotator=annotator, batch=batch, rng=rng)
        if comparison is None:
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
        # Gold and repeats take a slot too, so that an expired lease on them gives back what it took.
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
                "swapped": rng.random() < 0.5 if swapped is None else swapped,
            },
        )
        return Lease(assignment=assignment, created=True)


def _unseen_gold(*, annotator: User, batch: Batch, rng: random.Random) -> Comparison | None:
    """A gold comparison of the batch the annotator was never handed. Gold is not capped by overlap."""
    seen = Assignment.objects.filter(comparison=OuterRef("pk"), annotator=annotator)
    candidates = list(
        Comparison.objects.filter(batch=batch, is_gold=True)
        .filter(~Exists(seen))
        .order_by("id")
        .values_list("id", flat=True)[:GOLD_SAMPLE]
    )
    return Comparison.objects.get(pk=rng.choice(candidates)) if candidates else None


def _swapped_repeat(*, annotator: User, batch: Batch, rng: random.Random) -> tuple[Comparison | None, bool | None]:
    """A repeat of a pair the annotator rated earlier, and the `swapped` flag that shows it mirrored.

    The repeat is its own Comparison (an annotator holds one assignment per comparison) with the
    original's dialogue and context and its two responses exchanged (A is the original's B), in
    status "repeat": it is never queued by overlap, never labelled and never exported. One repeat
    row per original serves every annotator it is shown to. Given the same `swapped` flag as the
    annotator's first showing, each response appears on the other side: the payload has the same
    shape as any other pair, so nothing tells the annotator it is a check.
    """
    recent = list(
        Rating.objects.filter(
            annotator=annotator, comparison__batch=batch, comparison__repeat_of__isnull=True, comparison__is_gold=False
        )
        .order_by("-created_at", "-id")
        .values_list("comparison_id", flat=True)[:REPEAT_WINDOW]
    )[REPEAT_MIN_GAP:]
    if not recent:
        return None, None
    repeated = set(
        Assignment.objects.filter(annotator=annotator, comparison__repeat_of_id__in=recent).values_list(
            "comparison__repeat_of_id", flat=True
        )
    )
    candidates = [comparison_id for comparison_id in recent if comparison_id not in repeated]
    if not candidates:
        return None, None
    # The original's row lock makes two annotators asking at once share one repeat row.
    original = Comparison.objects.select_for_update().get(pk=rng.choice(candidates))
    repeat = Comparison.objects.filter(repeat_of=original).order_by("id").first()
    if repeat is None:
        repeat = Comparison.objects.create(
            batch_id=original.batch_id,
            dialogue_id=original.dialogue_id,
            context_length=original.context_length,
            response_a_id=original.response_b_id,
            response_b_id=original.response_a_id,
            status=ComparisonStatus.REPEAT,
            repeat_of=original,
        )
    first_swapped = (
        Assignment.objects.filter(comparison=original, annotator=annotator).values_list("swapped", flat=True).first()
    )
    return repeat, first_swapped


def assignment_for_writer(
    *, annotator: User, comparison: Comparison, now=None, rng: random.Random | None = None
) -> Assignment:
    """Lease a freshly sampled comparison to the annotator who wrote its prompt.

    Called by sampling inside the transaction that creates the comparison, so nobody else can have
    leased it. The writer rates their own pair first, whatever the cap on live leases; the pair then
    stays open for the rest of the batch's overlap like any other.
    """
    rng = rng or _rng
    now = now or timezone.now()
    Comparison.objects.filter(pk=comparison.pk).update(slots_taken=F("slots_taken") + 1)
    return Assignment.objects.create(
        comparison=comparison,
        annotator=annotator,
        swapped=rng.random() < 0.5,
        status=AssignmentStatus.LEASED,
        leased_at=now,
        expires_at=now + timedelta(minutes=comparison.batch.lease_minutes),
    )


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
    if seconds_spent is not None and not 0 <= seconds_spent <= MAX_SECONDS_SPENT:
        raise InvalidInput(
            f"seconds_spent must be between 0 and {MAX_SECONDS_SPENT:,} (a day); it was {seconds_spent:g}.",
            field="seconds_spent",
        )
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
            was_open = comparison.status == ComparisonStatus.OPEN
            comparison_label_refresh(comparison=comparison, now=now)
            is_check = comparison.is_gold or comparison.repeat_of_id is not None
            if is_check or (was_open and comparison.status == ComparisonStatus.COMPLETE):
                # Agreement follows completed comparisons and quality checks, off the request path:
                # the request is one conditional UPDATE in this transaction, the task is sent after
                # commit (a broker that is down never turns a stored rating into an error).
                from agreement.services import agreement_recompute_request

                agreement_recompute_request(batch_id=batch.id, now=now)
            return RatingResult(rating=rating, created=True)
    except IntegrityError:
        # A concurrent twin with the same key won the race: answer with its rating.
        twin = Rating.objects.filter(annotator=annotator, idempotency_key=idempotency_key).first()
        if twin is not None and twin.assignment_id == assignment_id:
            return RatingResult(rating=twin, created=False)
        raise Conflict("You have already rated this pair; your first rating stands.", field="assignment") from None


def comparison_label_refresh(*, comparison: Comparison, now=None) -> Comparison:
    """Recompute a comparison's majority label from its ratings. Idempotent.

    Quality checks keep their labels: a gold comparison's label is its gold answer (set when it was
    marked), a repeat has none. Their ratings only update the count.
    """
    if comparison.is_gold or comparison.repeat_of_id is not None:
        count = comparison.ratings.count()
        Comparison.objects.filter(pk=comparison.pk).update(rating_count=count)
        comparison.rating_count = count
        return comparison
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
    gold_rate: float = 0.0,
    repeat_rate: float = 0.0,
    week=None,
) -> Batch:
    if Batch.objects.filter(name=name).exists():
        raise Conflict(f"A batch named {name!r} already exists; pick another name.", field="name")
    if overlap < 1:
        raise InvalidInput("Overlap must be at least 1 rating per comparison.", field="overlap")
    check_rates_validate(gold_rate=gold_rate, repeat_rate=repeat_rate)
    today = timezone.localdate()
    week = week or today - timedelta(days=today.weekday())
    return Batch.objects.create(
        name=name,
        focus=focus,
        overlap=overlap,
        guidelines=guidelines,
        prompt_mode=prompt_mode,
        lease_minutes=lease_minutes,
        gold_rate=gold_rate,
        repeat_rate=repeat_rate,
        week=week,
        created_by=created_by,
    )


def check_rates_validate(*, gold_rate: float, repeat_rate: float) -> None:
    """Gold and repeat rates are shares of each annotator's pairs; most of the work stays real."""
    for field, rate in (("gold_rate", gold_rate), ("repeat_rate", repeat_rate)):
        if not 0 <= rate <= MAX_CHECK_RATE:
            raise InvalidInput(f"{field} is a share between 0 and {MAX_CHECK_RATE}, got {rate}.", field=field)
    if gold_rate + repeat_rate > MAX_CHECK_RATE:
        raise InvalidInput(
            f"Gold and repeat rates add up to {gold_rate + repeat_rate:g}; keep them at {MAX_CHECK_RATE} or less "
            "so that most pairs are real work.",
            field="repeat_rate",
        )


def comparison_gold_mark(*, comparison_id: int, choice: str, strength: str = "", now=None) -> Comparison:
    """Make a comparison gold with its expected answer (`choice` "a" or "b", by response).

    A gold comparison leaves the overlap queue, its label becomes the answer, and from now on it is
    handed out to every annotator at the batch's gold rate; their ratings test them (gold accuracy)
    and never change the label. Ratings given before it was marked stay ordinary ratings.
    """
    if choice not in Side.values:
        raise InvalidInput("Give the expected answer as choice 'a' or 'b' (response A or B).", field="choice")
    if strength and strength not in Strength.values:
        raise InvalidInput(
            f"Unknown strength {strength!r}; use one of: {', '.join(Strength.values)}.", field="strength"
        )
    now = now or timezone.now()
    with transaction.atomic():
        comparison = Comparison.objects.select_for_update().filter(pk=comparison_id).first()
        if comparison is None:
            raise NotFound("This comparison does not exist.", field="comparison")
        if comparison.repeat_of_id is not None:
            raise InvalidInput("A repeat cannot be gold; mark the comparison it repeats.", field="comparison")
        comparison.is_gold = True
        comparison.gold_choice = choice
        comparison.gold_strength = strength
        comparison.gold_marked_at = comparison.gold_marked_at or now
        comparison.status = ComparisonStatus.COMPLETE
        comparison.label_choice = choice
        comparison.label_strength = strength
        comparison.labelled_at = now
        comparison.save(
            update_fields=[
                "is_gold",
                "gold_choice",
                "gold_strength",
                "gold_marked_at",
                "status",
                "label_choice",
                "label_strength",
                "labelled_at",
            ]
        )
        _request_agreement_after_commit(comparison.batch_id)
    return comparison


def comparison_gold_unmark(*, comparison_id: int, now=None) -> Comparison:
    """Make a gold comparison ordinary again: its label is recomputed from all its ratings."""
    with transaction.atomic():
        comparison = Comparison.objects.select_for_update().select_related("batch").filter(pk=comparison_id).first()
        if comparison is None:
            raise NotFound("This comparison does not exist.", field="comparison")
        if not comparison.is_gold:
            raise Conflict("This comparison is not gold.", field="comparison")
        comparison.is_gold = False
        comparison.gold_choice = ""
        comparison.gold_strength = ""
        comparison.gold_marked_at = None
        comparison.save(update_fields=["is_gold", "gold_choice", "gold_strength", "gold_marked_at"])
        comparison_label_refresh(comparison=comparison, now=now)
        _request_agreement_after_commit(comparison.batch_id)
    return comparison


def gold_promote_unanimous(
    *, batch: Batch, limit: int | None = None, min_strength: str = Strength.NEGLIGIBLY_BETTER, now=None
) -> int:
    """Mark complete, unanimous comparisons of the batch gold, their majority label as the answer.

    The clearest first (strongest label strength, then oldest), up to `limit`, and only those
    whose label is at least `min_strength`. Returns how many were marked.
    """
    if min_strength not in Strength.values:
        raise InvalidInput(f"Unknown strength {min_strength!r}.", field="min_strength")
    if limit is not None and limit < 1:
        raise InvalidInput("Promote at least one comparison, or leave the limit out.", field="limit")
    strong_enough = [name for name, rank in STRENGTH_RANK.items() if rank >= STRENGTH_RANK[min_strength]]
    rank = Case(
        *(When(label_strength=name, then=Value(rank)) for name, rank in STRENGTH_RANK.items()),
        output_field=IntegerField(),
    )
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            Comparison.objects.filter(
                batch=batch,
                status=ComparisonStatus.COMPLETE,
                label_vote=Vote.UNANIMOUS,
                label_strength__in=strong_enough,
                is_gold=False,
                repeat_of__isnull=True,
            )
            .annotate(rank=rank)
            .order_by("-rank", "id")
            .values_list("id", flat=True)[:limit]
        )
        promoted = Comparison.objects.filter(pk__in=ids).update(
            is_gold=True, gold_choice=F("label_choice"), gold_strength=F("label_strength"), gold_marked_at=now
        )
        if promoted:
            _request_agreement_after_commit(batch.id)
    return promoted


def _request_agreement_after_commit(batch_id: int) -> None:
    from agreement.services import agreement_recompute_request

    # Gold changes no rating, so the reconciler would not notice them: always ask (researchers' actions).
    agreement_recompute_request(batch_id=batch_id, force=True)  # the task itself is sent after commit


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


def prompts_import(*, batch: Batch, source, created_by: User | None = None, allow_markup: bool = False) -> int:
    """Add prompts to a batch's pool from JSONL. All lines validate, or nothing is written. Chat-template
    markup in the text is refused unless the researcher allows it for this import."""
    from .importing import ImportFileError, parse_prompts
    from .models import Prompt

    try:
        parsed = parse_prompts(source, allow_markup=allow_markup)
    except ImportFileError as exc:
        raise InvalidInput(str(exc), field="file", extra={"errors": exc.errors}) from None
    with transaction.atomic():
        Prompt.objects.bulk_create([Prompt(batch=batch, text=p.text, tags=p.tags) for p in parsed], batch_size=1000)
    return len(parsed)


def comparisons_import(*, batch: Batch, source, created_by: User | None = None, allow_markup: bool = False) -> int:
    """Add ready-made comparisons to a batch from JSONL. All lines validate, or nothing is written.
    Chat-template markup in prompts, turns and responses is refused unless allowed for this import."""
    from .importing import ImportFileError, parse_comparisons
    from .models import Dialogue, Response, Turn

    try:
        parsed = parse_comparisons(source, allow_markup=allow_markup)
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
