"""Server-rendered pages. Each view checks the role, reads through selectors and renders."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render

from accounts.selectors import annotators_with_rating_totals
from annotation import selectors
from annotation.models import SafetyLabel, Strength


def role_required(check):
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(request, *args, **kwargs):
            if not check(request.user):
                raise PermissionDenied("This page is not for your role.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


researcher_required = role_required(lambda u: u.is_researcher)
annotator_required = role_required(lambda u: u.is_annotator)
manager_required = role_required(lambda u: u.is_vendor_manager or u.is_researcher)


@login_required
def home(request):
    user = request.user
    if user.is_researcher:
        return redirect("research-batches")
    if user.is_vendor_manager:
        return redirect("vendor-people")
    return redirect("annotate-index")


@annotator_required
def annotate_index(request):
    batches = selectors.batches_open_to_annotator(request.user)
    return render(
        request,
        "frontend/annotate_index.html",
        {"batches": batches, "ratings_today": selectors.ratings_today_count(request.user)},
    )


@annotator_required
def rate(request, batch_id: int):
    batch = get_object_or_404(selectors.batches_for(request.user), pk=batch_id, is_open=True)
    refusal = selectors.batch_refusal_for(request.user, batch)
    if refusal:
        return render(request, "frontend/refused.html", {"reason": refusal}, status=403)
    return render(
        request,
        "frontend/rate.html",
        {
            "batch": batch,
            "strengths": Strength.choices,
            "safety_labels": SafetyLabel.choices,
            "ratings_today": selectors.ratings_today_count(request.user),
        },
    )


def _strength_rows(counts: dict) -> list[dict]:
    total = sum(counts.values()) or 1
    return [
        {"label": label, "n": counts.get(code, 0), "percent": round(100 * counts.get(code, 0) / total)}
        for code, label in Strength.choices
    ]


def _safety_rows(counts: dict) -> list[dict]:
    total = sum(counts.values()) or 1
    return [
        {"label": label, "n": counts.get(code, 0), "percent": round(100 * counts.get(code, 0) / total)}
        for code, label in SafetyLabel.choices
    ]


@researcher_required
def research_batches(request):
    rows = selectors.batches_with_progress(user=request.user)
    return render(request, "frontend/research/batches.html", {"rows": rows})


@researcher_required
def research_batch(request, batch_id: int):
    batch = get_object_or_404(selectors.batches_for(request.user), pk=batch_id)
    progress = selectors.batch_progress(batch)
    status = request.GET.get("status")
    comparisons = selectors.comparisons_for_researcher(
        batch_id=batch.id, status=status if status in ("open", "complete") else None
    )
    page = Paginator(comparisons, 25).get_page(request.GET.get("page"))
    return render(
        request,
        "frontend/research/batch.html",
        {
            "batch": batch,
            "progress": progress,
            "strength_rows": _strength_rows(progress["by_strength"]),
            "safety_rows": _safety_rows(progress["by_safety"]),
            "page": page,
            "status": status or "",
        },
    )


@manager_required
def vendor_people(request):
    people = annotators_with_rating_totals(user=request.user)
    return render(request, "frontend/vendor_people.html", {"people": people})
