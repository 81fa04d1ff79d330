"""Reads of agreement reports and annotator quality, scoped by who is asking."""

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User, Vendor
from annotation.models import Batch, Rating

from .models import AgreementReport, AnnotatorQuality, ComparisonLabel, ReportScope, ReportStatus


@dataclass(frozen=True)
class ReportFilter:
    """Which ratings a filter report covers; empty fields do not filter."""

    batches: tuple[int, ...] = ()
    focus: str = ""
    vendor: int | None = None
    week_from: date | None = None
    week_to: date | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "ReportFilter":
        return cls(
            batches=tuple(sorted(set(data.get("batches") or ()))),
            focus=data.get("focus") or "",
            vendor=data.get("vendor"),
            week_from=_as_date(data.get("week_from")),
            week_to=_as_date(data.get("week_to")),
        )

    def as_dict(self) -> dict:
        data = asdict(self)
        data["batches"] = sorted(set(self.batches))
        data["week_from"] = self.week_from.isoformat() if self.week_from else None
        data["week_to"] = self.week_to.isoformat() if self.week_to else None
        return data

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def ratings(self) -> QuerySet[Rating]:
        ratings = Rating.objects.all()
        if self.batches:
            ratings = ratings.filter(comparison__batch_id__in=self.batches)
        if self.focus:
            ratings = ratings.filter(comparison__batch__focus=self.focus)
        if self.vendor is not None:
            ratings = ratings.filter(annotator__vendor_id=self.vendor)
        if self.week_from:
            ratings = ratings.filter(comparison__batch__week__gte=self.week_from)
        if self.week_to:
            ratings = ratings.filter(comparison__batch__week__lte=self.week_to)
        return ratings


def _as_date(value) -> date | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, date) else date.fromisoformat(value)


def report_ratings(report: AgreementReport) -> QuerySet[Rating]:
    """The ratings a report covers, as they are now."""
    if report.scope == ReportScope.FILTER:
        return ReportFilter.from_dict(report.filters).ratings()
    ratings = Rating.objects.filter(comparison__batch_id=report.batch_id)
    if report.scope == ReportScope.BATCH_VENDOR:
        ratings = ratings.filter(annotator__vendor_id=report.vendor_id)
    return ratings


def agreement_reports_for(user: User) -> QuerySet[AgreementReport]:
    """Researchers see every report; vendor managers their vendor's; annotators none."""
    reports = AgreementReport.objects.select_related("batch", "vendor")
    if user.is_researcher:
        return reports
    if user.is_vendor_manager:
        return reports.filter(vendor_id=user.vendor_id, scope__in=[ReportScope.BATCH_VENDOR, ReportScope.FILTER])
    return reports.none()


def batch_report_for(user: User, batch: Batch) -> AgreementReport | None:
    """The batch's report a user sees: the whole batch, or a vendor manager's own people in it."""
    if user.is_researcher:
        return AgreementReport.objects.filter(scope=ReportScope.BATCH, batch=batch).select_related("batch").first()
    if user.is_vendor_manager:
        return (
            AgreementReport.objects.filter(scope=ReportScope.BATCH_VENDOR, batch=batch, vendor_id=user.vendor_id)
            .select_related("batch", "vendor")
            .first()
        )
    return None


def annotator_quality_for(user: User, report: AgreementReport) -> QuerySet[AnnotatorQuality]:
    """Per-annotator rows of a report, limited to the people the user may see.

    A vendor's batch report shows its people's rows of the whole batch's report: their agreement
    with the other raters is measured against everyone who rated the same pairs.
    """
    source = report
    if report.scope == ReportScope.BATCH_VENDOR:
        source = AgreementReport.objects.filter(scope=ReportScope.BATCH, batch_id=report.batch_id).first()
        if source is None:
            return AnnotatorQuality.objects.none()
    rows = AnnotatorQuality.objects.filter(report=source).select_related("annotator__vendor")
    if report.vendor_id is not None:
        rows = rows.filter(annotator__vendor_id=report.vendor_id)
    if not user.is_researcher:
        rows = rows.filter(annotator__vendor_id=user.vendor_id) if user.is_vendor_manager else rows.none()
    return rows.order_by("-is_outlier", "annotator__username")


def comparison_labels_for(user: User, report: AgreementReport) -> QuerySet[ComparisonLabel]:
    """Each comparison's majority and Dawid-Skene label in a batch or filter report, in comparison order.

    Researchers only: a label says which response is right, which vendor managers do not need to
    judge their people (their annotator rows carry the figures) and annotators must not see.
    """
    if not user.is_researcher or report.scope == ReportScope.BATCH_VENDOR:
        return ComparisonLabel.objects.none()
    return ComparisonLabel.objects.filter(report=report).order_by("comparison_id")


def report_freshness(report: AgreementReport, *, now=None) -> dict:
    """How many ratings the report's scope has now against when it was computed, and whether a
    recompute is queued."""
    now = now or timezone.now()
    ratings_now = report_ratings(report).count()
    if report.scope == ReportScope.FILTER:
        pending = report.status == ReportStatus.PENDING
    else:
        requested = Batch.objects.filter(pk=report.batch_id).values_list("agreement_requested_at", flat=True).first()
        # A request is followed by a recompute within the resend window, or asked for again.
        expiry = timedelta(seconds=settings.PREFLAB_JOBS_RESEND_SECONDS)
        pending = requested is not None and requested > now - expiry
    return {
        "ratings_now": ratings_now,
        "newer_ratings": max(ratings_now - report.ratings_count, 0),
        "changed": ratings_now != report.ratings_count,
        "pending": pending,
    }


def agreement_trend(user: User) -> list[AgreementReport]:
    """The stored batch reports a user sees, oldest week first: the agreement-over-time series."""
    reports = agreement_reports_for(user).filter(status=ReportStatus.READY, batch__isnull=False)
    scope = ReportScope.BATCH if user.is_researcher else ReportScope.BATCH_VENDOR
    return list(reports.filter(scope=scope).order_by("batch__week", "batch_id"))


def annotator_history(user: User, annotator_id: int) -> QuerySet[AnnotatorQuality]:
    """One annotator's rows in every batch report, oldest week first, if the user may see them."""
    from accounts.selectors import people_for

    if not people_for(user).filter(pk=annotator_id).exists() or not (user.is_researcher or user.is_vendor_manager):
        return AnnotatorQuality.objects.none()
    return (
        AnnotatorQuality.objects.filter(annotator_id=annotator_id, report__scope=ReportScope.BATCH)
        .select_related("report__batch", "annotator__vendor")
        .order_by("report__batch__week", "report__batch_id")
    )


def _figure(metrics: dict, measure: str, statistic: str) -> tuple[float | None, float | None]:
    figure = metrics.get(measure, {}).get(statistic) or {}
    return figure.get("coefficient"), figure.get("standard_error")


def agreement_trend_rows(user: User) -> list[dict]:
    """One row per stored batch report the user sees: the figures plotted over time."""
    rows = []
    for report in agreement_trend(user):
        metrics = report.metrics
        ac2, ac2_se = _figure(metrics, "scale", "gwet_ac2")
        ac1, ac1_se = _figure(metrics, "choice", "gwet_ac1")
        alpha, alpha_se = _figure(metrics, "scale", "krippendorff_alpha")
        safety, safety_se = _figure(metrics, "safety", "gwet_ac1")
        rows.append(
            {
                "report": report.id,
                "batch": report.batch_id,
                "batch_name": report.batch.name,
                "focus": report.batch.focus,
                "week": report.batch.week,
                "vendor": report.vendor.name if report.vendor_id else "",
                "ratings": report.ratings_count,
                "comparisons": metrics.get("summary", {}).get("comparisons"),
                "scale_ac2": ac2,
                "scale_ac2_se": ac2_se,
                "choice_ac1": ac1,
                "choice_ac1_se": ac1_se,
                "scale_alpha_ordinal": alpha,
                "scale_alpha_ordinal_se": alpha_se,
                "safety_ac1": safety,
                "safety_ac1_se": safety_se,
                "computed_at": report.computed_at,
            }
        )
    return rows


# --- what the quality pages show about filter reports -----------------------------------------


@dataclass(frozen=True)
class FilterFormChoices:
    batches: list[tuple[int, str]]
    vendors: list[tuple[int, str]] | None  # None: the user filters by no vendor (their own only)


def filter_form_choices(*, user: User) -> FilterFormChoices:
    """The batches (every batch, newest week first) and, for researchers, the vendors a filter
    report can name."""
    batches = list(Batch.objects.order_by("-week", "name").values_list("id", "name"))
    vendors = list(Vendor.objects.values_list("id", "name")) if user.is_researcher else None
    return FilterFormChoices(batches=batches, vendors=vendors)


def filter_reports_for(*, user: User, limit: int) -> list[AgreementReport]:
    """The user's newest filter reports."""
    return list(agreement_reports_for(user).filter(scope=ReportScope.FILTER)[:limit])


def filter_description(report: AgreementReport) -> str:
    """A filter report's filter in words: its batches, focus, vendor and weeks."""
    filters = ReportFilter.from_dict(report.filters)
    parts = []
    if filters.batches:
        names = Batch.objects.filter(pk__in=filters.batches).order_by("week", "name").values_list("name", flat=True)
        parts.append("batches " + ", ".join(names))
    if filters.focus:
        parts.append(f"{filters.focus} batches")
    if filters.vendor is not None:
        vendor = Vendor.objects.filter(pk=filters.vendor).values_list("name", flat=True).first()
        parts.append(f"people of {vendor}")
    if filters.week_from or filters.week_to:
        day = lambda value: value.isoformat() if value else ""  # noqa: E731
        parts.append(f"weeks {day(filters.week_from) or '…'} to {day(filters.week_to) or '…'}")
    return "; ".join(parts) or "every rating"


def quality_batches_for(*, user: User) -> QuerySet[Batch]:
    """Batches whose quality pages the user may open: every batch, open or closed (a vendor manager
    sees only their own people's figures in it; the views that act on a batch are researchers')."""
    if not (user.is_researcher or user.is_vendor_manager):
        return Batch.objects.none()
    return Batch.objects.all()
