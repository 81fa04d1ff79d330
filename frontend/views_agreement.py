"""Agreement and annotator-quality pages. Researchers see every batch and person; vendor managers
see the same dashboards for their own people only; annotators see none of it.

The pages read stored reports (agreement.services computes them on the default queue);
forms post to these views, which call one service and redirect. Plots are server-side SVG
(agreement.plots) and every table links to its CSV from the API (`?format=csv`).
"""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from accounts.selectors import annotators_for
from agreement import plots, reliability, selectors
from agreement import services as agreement_services
from agreement.models import AgreementReport, ReportScope, ReportStatus
from annotation import selectors as annotation_selectors
from annotation import services
from config.exceptions import DomainError

from .views import manager_required, researcher_required

# Llama 2 (section 4.4): Gwet's AC2 of its human evaluations, a reference for the order of magnitude.
LLAMA2_BANDS = (
    plots.Band(0.37, 0.55, "Llama 2 helpfulness AC2 0.37–0.55", plots.COLORS["helpfulness"]),
    plots.Band(0.70, 0.95, "Llama 2 safety AC2 0.70–0.95", plots.COLORS["safety"]),
)
_SHORT_STRENGTH = {4: "signif.", 3: "better", 2: "slightly", 1: "neglig."}


class ReportFilterForm(forms.Form):
    batches = forms.TypedMultipleChoiceField(coerce=int, required=False)
    focus = forms.ChoiceField(
        choices=[("", "Any focus"), ("helpfulness", "Helpfulness"), ("safety", "Safety")], required=False
    )
    vendor = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    week_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    week_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        choices = selectors.filter_form_choices(user=user)
        self.fields["batches"].choices = choices.batches
        if choices.vendors is not None:
            self.fields["vendor"].choices = [("", "Every vendor"), *choices.vendors]
        else:
            del self.fields["vendor"]


@manager_required
def quality_home(request):
    rows = selectors.agreement_trend_rows(request.user)
    filters = selectors.filter_reports_for(user=request.user, limit=10)
    return render(
        request,
        "frontend/agreement/index.html",
        {
            "rows": rows,
            "trend_svg": _trend_svg(rows),
            "form": ReportFilterForm(user=request.user),
            "filter_reports": [(report, selectors.filter_description(report)) for report in filters],
        },
    )


@manager_required
def quality_batch(request, batch_id: int):
    batch = get_object_or_404(selectors.quality_batches_for(user=request.user), pk=batch_id)
    report = selectors.batch_report_for(request.user, batch)
    context = {"batch": batch, "report": report}
    if request.user.is_researcher:
        context["progress"] = annotation_selectors.batch_progress(batch)
    if report is not None:
        context.update(_dashboard(request, report, highlight_batch=batch.id))
    return render(request, "frontend/agreement/batch.html", context)


@manager_required
def quality_report(request, report_id: int):
    report = get_object_or_404(selectors.agreement_reports_for(request.user), pk=report_id)
    if report.scope != ReportScope.FILTER:
        return redirect("quality-batch", batch_id=report.batch_id)
    context = {"report": report, "description": selectors.filter_description(report)}
    if report.status == ReportStatus.READY:
        context.update(_dashboard(request, report))
    return render(request, "frontend/agreement/report.html", context)


@manager_required
def quality_annotator(request, annotator_id: int):
    person = get_object_or_404(annotators_for(user=request.user), pk=annotator_id)
    history = list(selectors.annotator_history(request.user, person.pk))
    points = []
    for row in history:
        batch = row.report.batch
        color = plots.COLORS[batch.focus]
        if row.agreement is not None:
            points.append(
                plots.TrendPoint(
                    batch.week,
                    row.agreement,
                    None,
                    f"agreement with the others, {batch.focus}",
                    color,
                    label=batch.name,
                    low=row.agreement_low,
                    high=row.agreement_high,
                )
            )
        if row.gold_accuracy is not None:
            points.append(
                plots.TrendPoint(
                    batch.week,
                    row.gold_accuracy,
                    None,
                    f"gold accuracy, {batch.focus}",
                    color,
                    label=batch.name,
                    low=row.gold_low,
                    high=row.gold_high,
                    hollow=True,
                )
            )
    svg = plots.trend_svg(
        points, y_label="Share (95% interval)", title=f"Quality of {person.pseudonym} per batch", width=1080
    )
    return render(
        request,
        "frontend/agreement/annotator.html",
        {
            "person": person,
            "history": history,
            "latest": history[-1] if history else None,
            "history_svg": _safe_svg(svg),
            "flag_labels": reliability.FLAG_LABELS,
        },
    )


@researcher_required
@require_POST
def quality_batch_recompute(request, batch_id: int):
    batch = get_object_or_404(selectors.quality_batches_for(user=request.user), pk=batch_id)
    agreement_services.agreement_recompute_request(batch_id=batch.id, force=True)
    messages.success(request, "Recompute queued. Reload in a moment to see the new figures.")
    return redirect("quality-batch", batch_id=batch.id)


@researcher_required
@require_POST
def quality_batch_promote_gold(request, batch_id: int):
    batch = get_object_or_404(selectors.quality_batches_for(user=request.user), pk=batch_id)
    try:
        limit = int(request.POST["limit"]) if request.POST.get("limit") else None
        promoted = services.gold_promote_unanimous(
            batch=batch, limit=limit, min_strength=request.POST.get("min_strength") or "negligibly_better"
        )
    except (ValueError, DomainError) as exc:
        messages.error(request, getattr(exc, "detail", "The limit is a whole number."))
    else:
        messages.success(request, f"{promoted} unanimous comparison{'s' if promoted != 1 else ''} marked gold.")
    return redirect("quality-batch", batch_id=batch.id)


@manager_required
@require_POST
def quality_filter(request):
    form = ReportFilterForm(request.POST, user=request.user)
    if not form.is_valid():
        messages.error(request, "Check the filter: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("quality-home")
    data = form.cleaned_data
    try:
        report = agreement_services.agreement_report_request(
            requested_by=request.user,
            batches=data["batches"],
            focus=data["focus"],
            vendor=data.get("vendor"),
            week_from=data["week_from"],
            week_to=data["week_to"],
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("quality-home")
    return redirect("quality-report", report_id=report.pk)


def _dashboard(request, report: AgreementReport, highlight_batch: int | None = None) -> dict:
    """Everything the dashboard partial shows for a ready report."""
    metrics = report.metrics
    rows = selectors.annotator_quality_for(request.user, report)
    trend = selectors.agreement_trend_rows(request.user)
    api = reverse("agreement-report-detail", args=[report.pk])
    return {
        "freshness": selectors.report_freshness(report),
        "summary": metrics.get("summary", {}),
        "aggregation": metrics.get("aggregation", {}),
        "headline": _headline(metrics),
        "metric_rows": reliability.metric_rows(metrics),
        "annotators": rows,
        "outliers": sum(1 for row in rows if row.is_outlier),
        "flag_labels": reliability.FLAG_LABELS,
        "trend_svg": _trend_svg(trend, highlight_batch),
        "strength_svg": _strength_svg(metrics),
        "scatter_svg": _scatter_svg(rows),
        "csv": {
            "metrics": f"{api}metrics/?format=csv",
            "annotators": f"{api}annotators/?format=csv",
            "strengths": f"{api}strengths/?format=csv",
            "trend": reverse("agreement-report-trend") + "?format=csv",
        },
    }


def _headline(metrics: dict) -> list[dict]:
    """The four figures on the cards: the Llama 2 statistic first."""
    wanted = [
        ("scale", "gwet_ac2", "AC2, signed scale", "Gwet, ordinal weights"),
        ("choice", "gwet_ac1", "AC1, choice", "Gwet, A or B"),
        ("scale", "krippendorff_alpha", "Krippendorff's α", "ordinal, signed scale"),
        ("choice", "fleiss_kappa", "Fleiss' κ", "choice"),
    ]
    cards = []
    for measure, statistic, title, note in wanted:
        figure = metrics.get(measure, {}).get(statistic) or {}
        cards.append(
            {
                "title": title,
                "note": note,
                "value": figure.get("coefficient"),
                "se": figure.get("standard_error"),
                "error": figure.get("error", ""),
            }
        )
    return cards


def _trend_svg(rows: list[dict], highlight_batch: int | None = None) -> str:
    points = []
    for row in rows:
        if row["scale_ac2"] is not None:
            points.append(
                plots.TrendPoint(
                    row["week"],
                    row["scale_ac2"],
                    row["scale_ac2_se"],
                    f"{row['focus']} batches: AC2, signed scale",
                    plots.COLORS[row["focus"]],
                    label=row["batch_name"],
                    highlight=row["batch"] == highlight_batch,
                )
            )
        if row["safety_ac1"] is not None:
            points.append(
                plots.TrendPoint(
                    row["week"],
                    row["safety_ac1"],
                    row["safety_ac1_se"],
                    "safety label: AC1",
                    plots.COLORS["safety"],
                    label=row["batch_name"],
                    hollow=True,
                    highlight=row["batch"] == highlight_batch,
                )
            )
    svg = plots.trend_svg(
        points,
        bands=LLAMA2_BANDS,
        y_label="Gwet's AC (95% interval)",
        title="Agreement per batch over time",
        width=1080,
        height=340,
    )
    return _safe_svg(svg)


def _strength_svg(metrics: dict) -> str:
    rows = reliability.strength_rows(metrics)
    bars = [
        plots.Bar(
            _SHORT_STRENGTH[abs(row["value"])],
            row["count"],
            plots.COLORS["helpfulness"] if row["value"] > 0 else "#7a5af8",
            note=f"{row['share']:.0%}" if row["count"] else "",
        )
        for row in rows
    ]
    svg = plots.bars_svg(
        bars,
        y_label="Ratings",
        title="Strength of preference",
        groups=[("response A preferred", 0, 3), ("response B preferred", 4, 7)],
        width=540,
        height=320,
    )
    return _safe_svg(svg)


def _scatter_svg(rows) -> str:
    points = [
        plots.ScatterPoint(
            row.ratings_per_hour,
            row.agreement,
            row.annotator.pseudonym,
            flagged=row.is_outlier,
            note="; ".join(reliability.FLAG_LABELS.get(flag, flag) for flag in row.flags),
        )
        for row in rows
        if row.agreement is not None and row.ratings_per_hour is not None
    ]
    svg = plots.scatter_svg(
        points,
        x_label="Ratings per hour (at the median time per rating)",
        y_label="Agreement with the other raters",
        title="Annotators: agreement against throughput",
        width=540,
        height=320,
    )
    return _safe_svg(svg)


def _safe_svg(svg: str) -> str:
    # agreement.plots escapes every text it draws, so its markup can go into the page as it is.
    return mark_safe(svg)
