"""The variant leaderboard page (researchers only: it names the models).

GET reads `leaderboard.selectors.leaderboard_for` for the scope in the query string (a batch, a week
or every batch; a focus; variant × temperature or variant; a reward model as judge) and draws the
forest plot server-side; the tables link to their CSVs from the API. The one form that writes asks
for a reward model to score the scope's responses (`rewardmodel.services.judging`), on a worker.
"""

import re

from django import forms
from django.contrib import messages
from django.http import QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from annotation import selectors as annotation_selectors
from annotation.models import Focus
from config.exceptions import DomainError
from core.routing import ID_PATTERN
from leaderboard import plots, selectors
from rewardmodel import selectors as rewardmodel_selectors
from rewardmodel.services import judging

from .views import researcher_required

PAGE_BOOTSTRAP = 200


class LeaderboardForm(forms.Form):
    batch = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    week = forms.DateField(required=False)
    focus = forms.ChoiceField(choices=[("", "Any focus"), *Focus.choices], required=False)
    by = forms.ChoiceField(
        choices=[(selectors.BY_VARIANT_TEMPERATURE, "Variant × temperature"), (selectors.BY_VARIANT, "Variant")],
        required=False,
    )
    judge_run = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    min_comparisons = forms.IntegerField(min_value=1, max_value=10_000, required=False)

    def __init__(self, *args, choices: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["batch"].choices = [("", "Every batch"), *((b.pk, b.name) for b in choices["batches"])]
        self.fields["judge_run"].choices = [("", "No reward model"), *((r.pk, r.name) for r in choices["runs"])]

    def clean(self):
        data = super().clean()
        if data.get("batch") and data.get("week"):
            raise forms.ValidationError("Choose a batch or a week, not both.")
        return data


def _matrix(ranking: selectors.Ranking) -> list[dict]:
    """Rows of the win-rate table with a colour per cell: blue when the row item wins, orange when it loses."""
    rows = []
    for entry, rates, counts in zip(ranking.entries, ranking.matrix, ranking.matrix_counts, strict=True):
        cells = []
        for rate, n in zip(rates, counts, strict=True):
            if rate is None:
                cells.append({"rate": None, "n": n, "style": ""})
                continue
            hue = 220 if rate >= 0.5 else 28
            strength = abs(rate - 0.5) * 2
            cells.append({"rate": rate, "n": n, "style": f"background: hsl({hue} 70% {96 - 36 * strength:.0f}%)"})
        rows.append({"label": selectors.item_label(entry.item), "cells": cells})
    return rows


def _points(ranking: selectors.Ranking) -> list[plots.Point]:
    return [
        plots.Point(selectors.item_label(e.item), e.rating if e.comparisons else None, e.low, e.high, e.too_few)
        for e in ranking.entries
    ]


@researcher_required
def leaderboard(request):
    choices = selectors.leaderboard_choices(request.user)
    form = LeaderboardForm(request.GET or None, choices=choices)
    context = {"form": form, "choices": choices}
    if request.GET and not form.is_valid():
        return render(request, "frontend/leaderboard/index.html", context, status=400)
    data = form.cleaned_data if request.GET else {}
    scope = selectors.Scope(batch_id=data.get("batch"), week=data.get("week"), focus=data.get("focus") or "")
    board = selectors.leaderboard_for(
        request.user,
        scope=scope,
        grouping=data.get("by") or selectors.BY_VARIANT_TEMPERATURE,
        judge_run_id=data.get("judge_run"),
        min_comparisons=data.get("min_comparisons") or selectors.DEFAULT_MIN_COMPARISONS,
        bootstrap_samples=PAGE_BOOTSTRAP,
    )
    query = QueryDict(mutable=True)
    query.update({key: value for key, value in request.GET.items() if value and key in form.fields})
    context.update(
        board=board,
        query=query.urlencode(),
        forest_svg=mark_safe(  # drawn by leaderboard.plots, which escapes every text
            plots.forest(_points(board.humans), _points(board.judge) if board.judge else None)
        ),
        matrix=_matrix(board.humans),
        judge_matrix=_matrix(board.judge) if board.judge else None,
        judgings=selectors.judgings_for(request.user, run_id=data.get("judge_run"), batch_id=scope.batch_id),
    )
    return render(request, "frontend/leaderboard/index.html", context)


@researcher_required
@require_POST
def leaderboard_judge(request):
    """Queue the scoring of the scope's responses by the chosen reward model, then back to the page."""
    back = reverse("research-leaderboard") + ("?" + request.POST.get("query", "") if request.POST.get("query") else "")
    run_id, batch_id = request.POST.get("run", ""), request.POST.get("batch", "")
    if not re.fullmatch(ID_PATTERN, run_id) or (batch_id and not re.fullmatch(ID_PATTERN, batch_id)):
        messages.error(request, "Choose a reward model to judge with.")
        return redirect(back)
    run = get_object_or_404(rewardmodel_selectors.runs_for(request.user), pk=int(run_id))
    batch = get_object_or_404(annotation_selectors.batches_for(request.user), pk=int(batch_id)) if batch_id else None
    try:
        judging.response_judging_create(run=run, batch=batch, created_by=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(
            request, f"{run.name} is scoring the responses of {batch.name if batch else 'every batch'} on a worker."
        )
    return redirect(back)
