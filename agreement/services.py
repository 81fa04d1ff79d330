"""Writes of agreement reports: recomputing a batch's figures, and reports over a researcher's filter.

Nothing here runs inside a rating request. `rating_submit` calls `agreement_recompute_request`
after its transaction commits, when a comparison has just become complete or a quality check was
answered. The request is debounced by one conditional UPDATE of the batch row
(`agreement_requested_at` from NULL to now): only the caller that flips it sends
`annotation.recompute_agreement` to the default queue, and the recompute sets it back to NULL
*before* it reads the ratings, so a rating that lands during a run queues the next run.

The database stays the truth: the reconciler (core.jobs) asks again for every batch whose report is
older than its newest rating (`agreement_reconcile`), so a lost message, a broker outage, a dead
worker or a recompute that failed once only delay a report. A request older than
PREFLAB_JOBS_RESEND_SECONDS no longer blocks a new one.

Filter reports (any batches, focus, vendor and week range) are computed by a task too: a focus
over every week can hold millions of ratings, too many to read within a request. The same filter
asked for twice shares one report, recomputed only when its ratings changed.
"""

import io
import logging
import math
import time
from datetime import timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import BooleanField, Case, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.utils import timezone

from accounts.models import User, Vendor
from annotation.models import Batch, Focus, Rating
from config.exceptions import InvalidInput, NotAllowed, NotFound
from core import jobs

from . import reliability
from .models import AgreementReport, AnnotatorQuality, ComparisonLabel, ReportScope, ReportStatus
from .selectors import ReportFilter

logger = logging.getLogger(__name__)

_RATING_COLUMNS = (
    "comparison_id",
    "comparison__repeat_of_id",
    "annotator_id",
    "annotator__vendor_id",
    "chosen",
    "strength",
    "safety_label",
    "shown_left",
    "seconds_spent",
    "gold_check",
    "comparison__gold_choice",
)


FILTER_REPORT = "annotation.filter_report"


def _pending_expiry() -> timedelta:
    return timedelta(seconds=settings.PREFLAB_JOBS_RESEND_SECONDS)


def agreement_recompute_request(*, batch_id: int, force: bool = False, now=None) -> bool:
    """Ask for a recompute of the batch's agreement unless one is pending. True if asked.

    Called inside the caller's transaction (a rating's): the flag is set in that transaction, so a
    completing rating commits once, and the task is sent after commit. Without `force` nothing is
    asked while a request is pending, nor within PREFLAB_AGREEMENT_MIN_INTERVAL_SECONDS of the last
    recompute's start (kept on the batch row, so a rating reads no report table): a busy batch is
    recomputed at that pace, not after every completed comparison, and the reconciler asks for what
    those ratings changed on its next pass. `force` (a researcher's "recompute now") always asks. A
    broker that does not answer is logged, never raised.
    """
    now = now or timezone.now()
    batches = Batch.objects.filter(pk=batch_id)
    if not force:
        paced = now - timedelta(seconds=settings.PREFLAB_AGREEMENT_MIN_INTERVAL_SECONDS)
        batches = batches.filter(
            Q(agreement_requested_at__isnull=True) | Q(agreement_requested_at__lt=now - _pending_expiry()),
            Q(agreement_started_at__isnull=True) | Q(agreement_started_at__lte=paced),
        )
    if not batches.update(agreement_requested_at=now):
        return False

    def send_after_commit() -> None:
        jobs.send_task("annotation.recompute_agreement", [batch_id], queue="default")

    transaction.on_commit(send_after_commit, robust=True)
    return True


def agreement_reconcile(now=None) -> list[int]:
    """Reconcile step: ask for a recompute of every batch whose report is older than its newest
    rating (or that has ratings and no report), unless a request is pending.

    A rating is stamped when its row is written, a little before it commits; a report that started
    reading in between would miss it, so ratings up to PREFLAB_AGREEMENT_SLACK_SECONDS older than
    the report count as newer. That costs at most a recompute or two after the last rating.
    """
    now = now or timezone.now()
    slack = timedelta(seconds=settings.PREFLAB_AGREEMENT_SLACK_SECONDS)
    report_time = AgreementReport.objects.filter(batch=OuterRef("pk"), scope=ReportScope.BATCH).values("computed_at")[
        :1
    ]
    candidates = Batch.objects.filter(
        Q(agreement_requested_at__isnull=True) | Q(agreement_requested_at__lt=now - _pending_expiry())
    ).annotate(report_at=Subquery(report_time))
    asked = []
    for batch_id, report_at in candidates.values_list("pk", "report_at"):
        ratings = Rating.objects.filter(comparison__batch_id=batch_id)
        if report_at is not None:
            ratings = ratings.filter(created_at__gte=report_at - slack)
        if ratings.exists() and agreement_recompute_request(batch_id=batch_id, now=now):
            asked.append(batch_id)
    return asked


def register_background_work() -> None:
    """Filter reports are core.jobs work; batch reports are kept current by `agreement_reconcile`."""
    jobs.register(
        jobs.JobKind(
            name=FILTER_REPORT,
            rows=lambda: AgreementReport.objects.filter(scope=ReportScope.FILTER),
            task="annotation.compute_agreement_report",
            queue="default",
            stale_seconds=lambda: settings.PREFLAB_JOBS_STALE_SECONDS,
            queued=ReportStatus.PENDING,
            running=(),
        )
    )
    jobs.register_step("annotation.agreement", agreement_reconcile)


def rating_table(ratings: QuerySet[Rating]) -> reliability.RatingTable:
    """Load ratings into the long-form table of agreement.reliability with one values_list query."""
    gold_check = Case(
        When(Q(comparison__is_gold=True, created_at__gte=F("comparison__gold_marked_at")), then=Value(True)),
        default=Value(False),
        output_field=BooleanField(),
    )
    rows = list(ratings.annotate(gold_check=gold_check).order_by().values_list(*_RATING_COLUMNS))
    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [() for _ in _RATING_COLUMNS]
    by_name = dict(zip(_RATING_COLUMNS, columns, strict=True))
    return reliability.RatingTable.from_columns(
        comparison=by_name["comparison_id"],
        repeat_of=by_name["comparison__repeat_of_id"],
        annotator=by_name["annotator_id"],
        vendor=by_name["annotator__vendor_id"],
        chosen=by_name["chosen"],
        strength=by_name["strength"],
        safety_label=by_name["safety_label"],
        shown_left=by_name["shown_left"],
        seconds=by_name["seconds_spent"],
        gold_check=by_name["gold_check"],
        gold_choice=by_name["comparison__gold_choice"],
    )


def agreement_recompute(*, batch_id: int, now=None) -> AgreementReport:
    """Recompute a batch's report, its per-annotator rows and one report per vendor. Idempotent.

    The vendor reports measure agreement among that vendor's people only (without Dawid-Skene,
    which is fitted once on the whole batch); the annotator rows are the whole batch's (agreement
    with every other rater of the same pairs).
    """
    if not Batch.objects.filter(pk=batch_id).exists():
        raise NotFound("This batch does not exist.", field="batch")
    as_of = now or timezone.now()
    # Cleared before reading, so that ratings arriving during this run queue the next one.
    Batch.objects.filter(pk=batch_id).update(agreement_requested_at=None, agreement_started_at=as_of)
    started = time.perf_counter()
    table = rating_table(Rating.objects.filter(comparison__batch_id=batch_id))
    metrics, quality, labels = reliability.analyse_with_labels(table)
    by_vendor = {}
    for vendor_id in np.unique(table.vendor[table.vendor >= 0]).tolist():
        mine = table.subset(table.vendor == vendor_id)
        # Agreement among the vendor's own people; Dawid-Skene is fitted once, on the whole batch.
        by_vendor[vendor_id] = (reliability.measure_agreement(mine, aggregation=False), len(mine))
    seconds = time.perf_counter() - started
    with transaction.atomic():
        stored = AgreementReport.objects.select_for_update().filter(scope=ReportScope.BATCH, batch_id=batch_id).first()
        if stored is not None and stored.computed_at is not None and stored.computed_at > as_of:
            # Two workers ran at once and the other read newer ratings: keep its figures.
            return stored
        report, _ = AgreementReport.objects.update_or_create(
            scope=ReportScope.BATCH,
            batch_id=batch_id,
            defaults=_ready(metrics, len(table), as_of, seconds),
        )
        _store_quality(report, quality)
        _store_labels(report, labels)
        for vendor_id, (vendor_metrics, count) in by_vendor.items():
            AgreementReport.objects.update_or_create(
                scope=ReportScope.BATCH_VENDOR,
                batch_id=batch_id,
                vendor_id=vendor_id,
                defaults=_ready(vendor_metrics, count, as_of, seconds),
            )
        AgreementReport.objects.filter(scope=ReportScope.BATCH_VENDOR, batch_id=batch_id).exclude(
            vendor_id__in=list(by_vendor)
        ).delete()
    logger.info("Agreement of batch %s: %s ratings in %.2f s", batch_id, len(table), seconds)
    return report


def agreement_report_request(
    *,
    requested_by: User,
    batches: list[int] | tuple[int, ...] = (),
    focus: str = "",
    vendor: int | None = None,
    week_from=None,
    week_to=None,
    now=None,
) -> AgreementReport:
    """A report over a filter, queued for computation unless an up-to-date or queued one exists.

    Vendor managers always get their own vendor's people only.
    """
    if not (requested_by.is_researcher or requested_by.is_vendor_manager):
        raise NotAllowed("Only researchers and vendor managers see agreement reports.")
    if requested_by.is_vendor_manager and not requested_by.is_researcher:
        if vendor not in (None, requested_by.vendor_id):
            raise NotAllowed("Vendor managers see their own vendor's people only.", field="vendor")
        vendor = requested_by.vendor_id
    if focus and focus not in Focus.values:
        raise InvalidInput(f"Unknown focus {focus!r}; use one of: {', '.join(Focus.values)}.", field="focus")
    if week_from and week_to and week_from > week_to:
        raise InvalidInput("The first week comes after the last one.", field="week_from")
    unique_batches = sorted(set(batches))
    if len(unique_batches) != Batch.objects.filter(pk__in=unique_batches).count():
        raise NotFound("Some of these batches do not exist.", field="batches")
    if vendor is not None and not Vendor.objects.filter(pk=vendor).exists():
        raise NotFound("This vendor does not exist.", field="vendor")
    filters = ReportFilter(
        batches=tuple(unique_batches), focus=focus, vendor=vendor, week_from=week_from, week_to=week_to
    )
    now = now or timezone.now()
    with transaction.atomic():
        report, created = AgreementReport.objects.select_for_update().get_or_create(
            scope=ReportScope.FILTER,
            filter_key=filters.key,
            defaults={
                "filters": filters.as_dict(),
                "vendor_id": vendor,  # a vendor's filter reports are theirs to read
                "requested_by": requested_by,
                "status": ReportStatus.PENDING,
            },
        )
        if not created:
            if report.status == ReportStatus.PENDING and report.requested_at > now - _pending_expiry():
                return report
            if report.status == ReportStatus.READY and report.ratings_count == filters.ratings().count():
                return report
            report.status = ReportStatus.PENDING
            report.requested_at = now
            report.requested_by = requested_by
            report.save(update_fields=["status", "requested_at", "requested_by"])
        jobs.enqueue(FILTER_REPORT, [report.pk])
    return report


def agreement_report_compute(*, report_id: int, now=None) -> AgreementReport:
    """Compute a filter report. A failure is stored on the report (and raised) rather than lost."""
    report = AgreementReport.objects.filter(pk=report_id, scope=ReportScope.FILTER).first()
    if report is None:
        raise NotFound("This report does not exist.", field="report")
    started = time.perf_counter()
    try:
        table = rating_table(ReportFilter.from_dict(report.filters).ratings())
        metrics, quality, labels = reliability.analyse_with_labels(table)
    except Exception as exc:
        AgreementReport.objects.filter(pk=report_id).update(status=ReportStatus.FAILED, error=str(exc)[:2000])
        raise
    seconds = time.perf_counter() - started
    with transaction.atomic():
        for name, value in _ready(metrics, len(table), now or timezone.now(), seconds).items():
            setattr(report, name, value)
        report.save()
        _store_quality(report, quality)
        _store_labels(report, labels)
    return report


def _ready(metrics: dict, ratings_count: int, now, seconds: float) -> dict:
    return {
        "status": ReportStatus.READY,
        "error": "",
        "metrics": _json_safe(metrics),
        "ratings_count": ratings_count,
        "computed_at": now,
        "seconds": seconds,
    }


def _store_quality(report: AgreementReport, quality: dict[int, dict[str, Any]]) -> None:
    AnnotatorQuality.objects.filter(report=report).delete()
    AnnotatorQuality.objects.bulk_create(
        [
            AnnotatorQuality(report=report, annotator_id=annotator_id, **_json_safe(row))
            for annotator_id, row in quality.items()
        ],
        batch_size=1000,
    )


def _store_labels(report: AgreementReport, labels: reliability.ComparisonLabels | None) -> None:
    """Each comparison's majority and Dawid-Skene label, from the fit the report shows.

    A batch holds up to a few hundred thousand comparisons. On PostgreSQL the rows go in with one
    COPY (100,000 rows as INSERTs took about 5 s of a 9 s recompute); elsewhere with bulk_create.
    """
    ComparisonLabel.objects.filter(report=report).delete()
    if labels is None:
        return
    side = np.array(["a", "b", ""])
    rows = zip(
        labels.unit.tolist(),
        labels.votes_a.tolist(),
        labels.votes_b.tolist(),
        side[labels.majority].tolist(),
        side[labels.ds_label].tolist(),
        labels.ds_posterior.tolist(),
        labels.ds_posterior_a.tolist(),
        strict=True,
    )
    if connection.vendor == "postgresql":
        _copy_labels(report.pk, rows)
        return
    ComparisonLabel.objects.bulk_create(
        (
            ComparisonLabel(
                report_id=report.pk,
                comparison_id=comparison,
                votes_a=votes_a,
                votes_b=votes_b,
                majority=majority,
                ds_label=ds_label,
                ds_posterior=posterior,
                ds_posterior_a=posterior_a,
            )
            for comparison, votes_a, votes_b, majority, ds_label, posterior, posterior_a in rows
        ),
        batch_size=5000,
    )


_LABEL_COLUMNS = (
    "report_id",
    "comparison_id",
    "votes_a",
    "votes_b",
    "majority",
    "ds_label",
    "ds_posterior",
    "ds_posterior_a",
)


def _copy_labels(report_id: int, rows) -> None:
    """COPY the label rows (ints, "a"/"b"/"" and floats only: nothing to escape in the text format)."""
    buffer = io.StringIO()
    for comparison, votes_a, votes_b, majority, ds_label, posterior, posterior_a in rows:
        buffer.write(
            f"{report_id}\t{comparison}\t{votes_a}\t{votes_b}\t{majority}\t{ds_label}\t{posterior!r}\t{posterior_a!r}\n"
        )
    buffer.seek(0)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column) for column in _LABEL_COLUMNS)
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(
            f"COPY {quote(ComparisonLabel._meta.db_table)} ({columns}) FROM STDIN WITH (FORMAT text)", buffer
        )


def _json_safe(value):
    """NaN and infinity become None: PostgreSQL's jsonb and float columns take no NaN from JSON."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
