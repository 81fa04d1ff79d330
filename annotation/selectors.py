"""Reads of the annotation data, scoped by who is asking."""

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User

from .models import Batch, Comparison, ComparisonStatus, Rating, Turn


def batch_refusal_for(user: User, batch: Batch) -> str | None:
    """Why this user may not take work from this batch, or None when they may."""
    if not user.is_annotator:
        return "Only annotators rate comparisons."
    if not batch.is_open:
        return f"The batch {batch.name!r} is closed."
    for check in _qualification_checks:
        reason = check(user, batch)
        if reason:
            return reason
    return None


# Other apps (the selection quizzes) register checks that can keep an annotator out of a batch.
_qualification_checks: list = []


def register_qualification_check(check) -> None:
    if check not in _qualification_checks:
        _qualification_checks.append(check)


def batches_for(user: User) -> QuerySet[Batch]:
    """Batches the user may see: researchers all of them, others the open ones."""
    batches = Batch.objects.all()
    if not user.is_researcher:
        batches = batches.filter(is_open=True)
    return batches


def batches_open_to_annotator(user: User) -> list[Batch]:
    return [batch for batch in Batch.objects.filter(is_open=True) if batch_refusal_for(user, batch) is None]


def ratings_for(user: User) -> QuerySet[Rating]:
    """Annotators see their own ratings, vendor managers their vendor's, researchers all."""
    ratings = Rating.objects.select_related("comparison", "annotator")
    if user.is_researcher:
        return ratings
    if user.is_vendor_manager:
        return ratings.filter(annotator__vendor_id=user.vendor_id)
    return ratings.filter(annotator=user)


def ratings_today_count(user: User) -> int:
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return Rating.objects.filter(annotator=user, created_at__gte=start).count()


def batch_progress(batch: Batch) -> dict:
    """Ratings done and needed, and the label distribution by strength and safety bin.

    Progress counts the overlap queue: gold comparisons and repeats (quality checks, rated outside
    the overlap) are counted apart. Label distributions include gold, whose label is its answer.
    """
    comparisons = Comparison.objects.filter(batch=batch, repeat_of__isnull=True)
    # distinct: the join with ratings repeats each comparison once per rating.
    totals = comparisons.filter(is_gold=False).aggregate(
        comparisons=Count("id", distinct=True),
        complete=Count("id", filter=Q(status=ComparisonStatus.COMPLETE), distinct=True),
        ratings=Count("ratings"),
    )
    checks = Comparison.objects.filter(batch=batch).filter(Q(is_gold=True) | Q(repeat_of__isnull=False))
    check_totals = checks.aggregate(
        gold=Count("id", filter=Q(is_gold=True)),
        repeats=Count("id", filter=Q(repeat_of__isnull=False)),
        ratings=Coalesce(Sum("rating_count"), 0),
    )
    needed = totals["comparisons"] * batch.overlap
    by_strength = dict(
        comparisons.filter(status=ComparisonStatus.COMPLETE)
        .exclude(label_strength="")
        .values_list("label_strength")
        .annotate(n=Count("id"))
    )
    by_safety = dict(
        comparisons.filter(status=ComparisonStatus.COMPLETE)
        .exclude(label_safety="")
        .values_list("label_safety")
        .annotate(n=Count("id"))
    )
    by_vote = dict(
        comparisons.filter(status=ComparisonStatus.COMPLETE).values_list("label_vote").annotate(n=Count("id"))
    )
    return {
        "comparisons": totals["comparisons"],
        "complete": totals["complete"],
        "ratings_done": totals["ratings"],
        "ratings_needed": needed,
        "percent": round(100 * totals["ratings"] / needed, 1) if needed else 0.0,
        "by_strength": by_strength,
        "by_safety": by_safety,
        "by_vote": by_vote,
        "gold": check_totals["gold"],
        "repeats": check_totals["repeats"],
        "check_ratings": check_totals["ratings"],
    }


def comparisons_for_researcher(
    batch_id: int | None = None, *, include_repeats: bool = False, status: str | None = None
) -> QuerySet[Comparison]:
    # The prompt is the last turn of the context: the user turn the two responses answer.
    prompt = Turn.objects.filter(dialogue=OuterRef("dialogue"), index=OuterRef("context_length") - 1)
    comparisons = (
        Comparison.objects.select_related("batch", "response_a__variant", "response_b__variant", "dialogue")
        .annotate(prompt_text=Subquery(prompt.values("content")[:1]), turns_before=F("context_length") - 1)
        .order_by("id")
    )
    if batch_id is not None:
        comparisons = comparisons.filter(batch_id=batch_id)
    if not include_repeats:
        comparisons = comparisons.filter(repeat_of__isnull=True)
    if status:
        comparisons = comparisons.filter(status=status)
    return comparisons


def comparison_context(comparison: Comparison) -> list[dict]:
    """The dialogue turns before the compared responses, oldest first."""
    turns = comparison.dialogue.turns.filter(index__lt=comparison.context_length).order_by("index")
    return [{"role": t.role, "content": t.content} for t in turns]


# --- pages: the research batch list and the dataset forms --------------------------------------


def batches_with_progress(*, user: User) -> list[dict]:
    """The batches the user may see, newest week first, each with the overlap progress that
    batch_progress reports (comparisons, complete, ratings done and needed, percent), in one query."""
    overlap = Q(comparisons__is_gold=False, comparisons__repeat_of__isnull=True)
    batches = (
        batches_for(user)
        .annotate(
            n_comparisons=Count("comparisons", filter=overlap, distinct=True),
            n_complete=Count(
                "comparisons", filter=overlap & Q(comparisons__status=ComparisonStatus.COMPLETE), distinct=True
            ),
            # Each rating joins once to its comparison: no distinct needed.
            n_ratings=Count("comparisons__ratings", filter=overlap),
        )
        # A grouped query drops the model's default ordering: say it again.
        .order_by(*Batch._meta.ordering)
    )
    rows = []
    for batch in batches:
        needed = batch.n_comparisons * batch.overlap
        progress = {
            "comparisons": batch.n_comparisons,
            "complete": batch.n_complete,
            "ratings_done": batch.n_ratings,
            "ratings_needed": needed,
            "percent": round(100 * batch.n_ratings / needed, 1) if needed else 0.0,
        }
        rows.append({"batch": batch, "progress": progress})
    return rows


def batches_newest_first(*, user: User) -> QuerySet[Batch]:
    """The batches the user may see by week, newest first, then by name (the dataset pages' choices)."""
    return batches_for(user).order_by("-week", "name")


def batch_weeks(*, user: User) -> QuerySet:
    """The distinct weeks of the batches the user may see, newest first."""
    return batches_for(user).order_by("-week").values_list("week", flat=True).distinct()
