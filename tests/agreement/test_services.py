"""Agreement reports through the real services: synthetic annotators of known reliability, the
stored figures against the pure functions and the reference package, vendor scoping, the debounced
recompute queue, filter reports, and one recompute on a real Celery worker."""

import datetime
from collections import defaultdict

import krippendorff
import numpy as np
import pytest
from django.utils import timezone

from agreement import services as agreement_services
from agreement.coefficients import fleiss_kappa, gwet_ac, krippendorff_alpha
from agreement.models import AgreementReport, AnnotatorQuality, ComparisonLabel, ReportScope, ReportStatus
from agreement.reliability import SIGNED_SCALE, comparison_labels
from agreement.selectors import annotator_quality_for, report_freshness
from annotation import services
from annotation.models import Batch, Comparison, Rating
from config.exceptions import NotAllowed
from tests.agreement.crowd import CONTRARIAN, LEFT, RANDOM, RELIABLE, seed_crowd
from tests.conftest import wait_for
from tests.factories import (
    AnnotatorFactory,
    BatchFactory,
    ComparisonFactory,
    UserFactory,
    VendorFactory,
    VendorManagerFactory,
)

RANK = {"negligibly_better": 1, "slightly_better": 2, "better": 3, "significantly_better": 4}


def scale_matrix(batch: Batch, vendor=None) -> np.ndarray:
    """The signed-scale units x raters array built straight from the ORM, independently of the service:
    ordinary ratings only (no repeats, no ratings of gold made after it was marked)."""
    by_comparison = defaultdict(list)
    ratings = Rating.objects.filter(comparison__batch=batch, comparison__repeat_of__isnull=True).select_related(
        "comparison", "annotator"
    )
    for rating in ratings:
        comparison = rating.comparison
        if comparison.is_gold and rating.created_at >= comparison.gold_marked_at:
            continue
        if vendor is not None and rating.annotator.vendor_id != vendor.id:
            continue
        rank = RANK[rating.strength]
        by_comparison[comparison.id].append(rank if rating.chosen == "a" else -rank)
    width = max(len(v) for v in by_comparison.values())
    return np.array([v + [np.nan] * (width - len(v)) for v in by_comparison.values()], dtype=float)


@pytest.fixture
def crowd_batch(db):
    """A helpfulness batch rated by 5 reliable annotators, one random and one left-picker, with gold
    and swapped repeats mixed into their queues."""
    acme, other = VendorFactory(name="Acme"), VendorFactory(name="Other")
    reliable = [AnnotatorFactory(vendor=acme if i < 3 else other) for i in range(5)]
    random_rater, left_picker = AnnotatorFactory(vendor=acme), AnnotatorFactory(vendor=other)
    batch = BatchFactory(gold_rate=0.15, repeat_rate=0.15)
    policies = {**dict.fromkeys(reliable, RELIABLE), random_rater: RANDOM, left_picker: LEFT}
    crowd = seed_crowd(batch, policies, comparisons=70, gold=8, seed=3)
    return batch, crowd, reliable, random_rater, left_picker, acme


@pytest.mark.django_db
def test_annotators_of_known_reliability_through_the_services(crowd_batch):
    batch, _crowd, reliable, random_rater, left_picker, acme = crowd_batch
    report = agreement_services.agreement_recompute(batch_id=batch.id)
    rows = {row.annotator_id: row for row in AnnotatorQuality.objects.filter(report=report)}
    left, rand, good = rows[left_picker.id], rows[random_rater.id], [rows[a.id] for a in reliable]

    assert left.left_share == 1.0 and left.position_significant and "position_bias" in left.flags
    assert "position_bias" not in rand.flags and all("position_bias" not in r.flags for r in good)
    assert rand.agreement < min(r.agreement for r in good)
    assert left.swap_n > 0 and left.swap_consistency == 0.0  # mirrored pairs, always the left one
    assert rand.median_seconds < 15 < min(r.median_seconds for r in good)
    assert left.is_outlier and not any(r.is_outlier for r in good)

    # Gold accuracy is the share of ratings of gold items (made after marking) with the gold answer.
    for annotator_id, row in rows.items():
        checks = Rating.objects.filter(annotator_id=annotator_id, comparison__is_gold=True)
        right = sum(r.chosen == r.comparison.gold_choice for r in checks.select_related("comparison"))
        assert row.gold_n == checks.count()
        if row.gold_n:
            assert row.gold_accuracy == pytest.approx(right / row.gold_n)
    assert sum(r.gold_n for r in rows.values()) > 0
    assert all(r.gold_accuracy is None or r.gold_accuracy >= 0.5 for r in good)

    summary = report.metrics["summary"]
    assert summary["gold_checks"] == Rating.objects.filter(comparison__is_gold=True).count()
    assert summary["repeat_checks"] == Rating.objects.filter(comparison__repeat_of__isnull=False).count() > 0
    assert summary["comparisons"] == 62  # the 8 gold comparisons never had ordinary ratings
    assert report.ratings_count == Rating.objects.filter(comparison__batch=batch).count()

    # The stored figures are the pure functions on the same ratings, and match the reference package.
    scale = scale_matrix(batch)
    stored = report.metrics
    assert stored["scale"]["gwet_ac2"] == pytest.approx(gwet_ac(scale, SIGNED_SCALE, "ordinal").as_dict())
    assert stored["scale"]["gwet_ac1"] == pytest.approx(gwet_ac(scale, SIGNED_SCALE).as_dict())
    assert stored["scale"]["fleiss_kappa"] == pytest.approx(fleiss_kappa(scale, SIGNED_SCALE).as_dict())
    assert stored["scale"]["krippendorff_alpha"] == pytest.approx(krippendorff_alpha(scale, "ordinal").as_dict())
    choice = (scale > 0).astype(float)
    choice[np.isnan(scale)] = np.nan
    assert stored["choice"]["gwet_ac1"] == pytest.approx(gwet_ac(choice, [0, 1]).as_dict())
    for measure, matrix, level, name in [
        ("scale", scale, "ordinal", "krippendorff_alpha"),
        ("scale", scale, "interval", "krippendorff_alpha_interval"),
        ("choice", choice, "nominal", "krippendorff_alpha"),
    ]:
        reference = krippendorff.alpha(reliability_data=matrix.T, level_of_measurement=level)
        assert stored[measure][name]["coefficient"] == pytest.approx(reference, abs=1e-9)

    # A vendor's report measures agreement among its own people only.
    vendor_report = AgreementReport.objects.get(scope=ReportScope.BATCH_VENDOR, batch=batch, vendor=acme)
    mine = scale_matrix(batch, vendor=acme)
    assert vendor_report.metrics["scale"]["gwet_ac2"] == pytest.approx(gwet_ac(mine, SIGNED_SCALE, "ordinal").as_dict())
    assert vendor_report.ratings_count == Rating.objects.filter(comparison__batch=batch, annotator__vendor=acme).count()


@pytest.mark.django_db
def test_vendor_managers_see_their_own_people_only():
    acme, other = VendorFactory(), VendorFactory()
    batch = BatchFactory(overlap=3)
    people = [AnnotatorFactory(vendor=acme), AnnotatorFactory(vendor=acme), AnnotatorFactory(vendor=other)]
    complete_one(batch, people)
    agreement_services.agreement_recompute(batch_id=batch.id)
    manager = VendorManagerFactory(vendor=acme)
    vendor_report = AgreementReport.objects.get(scope=ReportScope.BATCH_VENDOR, batch=batch, vendor=acme)
    rows = list(annotator_quality_for(manager, vendor_report))
    assert {row.annotator_id for row in rows} == {people[0].id, people[1].id}
    batch_report = AgreementReport.objects.get(scope=ReportScope.BATCH, batch=batch)
    assert {r.annotator.vendor_id for r in annotator_quality_for(manager, batch_report)} == {acme.id}
    assert len(annotator_quality_for(UserFactory(), batch_report)) == 3
    assert not annotator_quality_for(AnnotatorFactory(vendor=acme), batch_report).exists()
    # Their people left the batch: their vendor report goes with the next recompute.
    Rating.objects.filter(annotator__vendor=other).delete()
    agreement_services.agreement_recompute(batch_id=batch.id)
    assert not AgreementReport.objects.filter(scope=ReportScope.BATCH_VENDOR, vendor=other).exists()


def complete_one(batch, annotators, key="k"):
    comparison = ComparisonFactory(batch=batch)
    for annotator in annotators:
        lease = services.assignment_next(annotator=annotator, batch=batch)
        services.rating_submit(
            annotator=annotator,
            assignment_id=lease.assignment.pk,
            chosen_response_id=comparison.response_a_id,
            strength="better",
            seconds_spent=30,
            idempotency_key=f"{key}-{annotator.pk}",
        )
    return comparison


@pytest.mark.django_db
def test_completing_a_comparison_queues_one_recompute_after_commit(django_capture_on_commit_callbacks):
    batch = BatchFactory(overlap=2)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        complete_one(batch, AnnotatorFactory.create_batch(2))
    assert len(callbacks) == 1  # the first rating left the comparison open: nothing queued for it
    report = AgreementReport.objects.get(scope=ReportScope.BATCH, batch=batch)  # the eager task ran
    assert report.status == ReportStatus.READY and report.ratings_count == 2
    assert Batch.objects.get(pk=batch.pk).agreement_requested_at is None  # cleared by the run
    assert report_freshness(report) == {"ratings_now": 2, "newer_ratings": 0, "changed": False, "pending": False}
    with django_capture_on_commit_callbacks(execute=True):
        complete_one(batch, AnnotatorFactory.create_batch(1), key="late")  # one more rating, still open
    assert report_freshness(report)["newer_ratings"] == 1


@pytest.mark.django_db
def test_recompute_requests_are_debounced_until_the_run_starts(django_capture_on_commit_callbacks, settings):
    settings.PREFLAB_AGREEMENT_MIN_INTERVAL_SECONDS = 10
    batch = BatchFactory()
    now = timezone.now()
    Batch.objects.filter(pk=batch.pk).update(agreement_requested_at=now)
    assert not agreement_services.agreement_recompute_request(batch_id=batch.pk, now=now)
    # A request stuck for longer than PREFLAB_JOBS_RESEND_SECONDS no longer blocks.
    later = now + datetime.timedelta(minutes=16)
    with django_capture_on_commit_callbacks(execute=True):
        assert agreement_services.agreement_recompute_request(batch_id=batch.pk, now=later)
    report = AgreementReport.objects.get(batch=batch, scope=ReportScope.BATCH)
    # Within the minimum interval after a report nothing is asked (the reconciler catches up) ...
    soon = report.computed_at + datetime.timedelta(seconds=5)
    assert not agreement_services.agreement_recompute_request(batch_id=batch.pk, now=soon)
    assert agreement_services.agreement_recompute_request(batch_id=batch.pk, now=soon + datetime.timedelta(seconds=6))
    # ... and a researcher's "recompute now" always asks.
    Batch.objects.filter(pk=batch.pk).update(agreement_requested_at=now)
    assert agreement_services.agreement_recompute_request(batch_id=batch.pk, force=True)


@pytest.mark.django_db
def test_a_run_that_read_older_ratings_never_overwrites_a_newer_one():
    batch = BatchFactory(overlap=2)
    complete_one(batch, AnnotatorFactory.create_batch(2))
    newer = agreement_services.agreement_recompute(batch_id=batch.pk)
    slow = agreement_services.agreement_recompute(batch_id=batch.pk, now=newer.computed_at - datetime.timedelta(1))
    assert slow.pk == newer.pk and slow.computed_at == newer.computed_at


@pytest.mark.django_db
def test_filter_reports_are_shared_reused_and_scoped(django_capture_on_commit_callbacks):
    acme, other = VendorFactory(), VendorFactory()
    week = timezone.localdate() - datetime.timedelta(days=timezone.localdate().weekday())
    batches = [BatchFactory(overlap=2, week=week), BatchFactory(overlap=2, week=week, focus="safety")]
    people = [AnnotatorFactory(vendor=acme), AnnotatorFactory(vendor=acme), AnnotatorFactory(vendor=other)]
    complete_one(batches[0], people[:2], key="a")
    complete_one(batches[0], people[1:], key="b")
    researcher = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        report = agreement_services.agreement_report_request(requested_by=researcher, focus="helpfulness")
    report.refresh_from_db()
    assert report.status == ReportStatus.READY and report.ratings_count == 4
    assert report.annotators.count() == 3
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = agreement_services.agreement_report_request(requested_by=UserFactory(), focus="helpfulness")
    assert again.pk == report.pk and callbacks == []  # nothing changed: no recompute

    manager = VendorManagerFactory(vendor=acme)
    with django_capture_on_commit_callbacks(execute=True):
        mine = agreement_services.agreement_report_request(requested_by=manager, week_from=week, week_to=week)
    mine.refresh_from_db()
    assert mine.filters["vendor"] == acme.id and mine.ratings_count == 3
    assert {row.annotator.vendor_id for row in mine.annotators.select_related("annotator")} == {acme.id}
    with pytest.raises(NotAllowed):
        agreement_services.agreement_report_request(requested_by=manager, vendor=other.id)
    with pytest.raises(NotAllowed):
        agreement_services.agreement_report_request(requested_by=AnnotatorFactory())


@pytest.mark.services
def test_a_completed_comparison_triggers_a_recompute_on_a_real_worker(celery_worker):
    batch = BatchFactory(overlap=3)
    comparison = complete_one(batch, AnnotatorFactory.create_batch(3))
    assert Comparison.objects.get(pk=comparison.pk).status == "complete"
    report = wait_for(
        lambda: AgreementReport.objects.filter(scope=ReportScope.BATCH, batch=batch, status=ReportStatus.READY).first(),
        timeout=60,
    )
    assert report.ratings_count == 3
    assert report.metrics["choice"]["gwet_ac1"]["observed"] == 1.0
    wait_for(lambda: Batch.objects.get(pk=batch.pk).agreement_requested_at is None, timeout=30)


@pytest.mark.django_db
@pytest.mark.parametrize("gold", [0, 12])
def test_bad_annotators_are_flagged_with_and_without_gold(gold):
    """Five reliable annotators, a coin-flipper, a contrarian and a side-picker rate 240 pairs three
    times through the services. With or without gold items the three bad ones are flagged and no good
    one is; the stored labels are the same fit as the report's Dawid-Skene figures."""
    reliable = [AnnotatorFactory() for _ in range(5)]
    random_rater, contrarian, left_picker = AnnotatorFactory(), AnnotatorFactory(), AnnotatorFactory()
    batch = BatchFactory(gold_rate=0.1 if gold else 0.0, repeat_rate=0.0)
    policies = {**dict.fromkeys(reliable, RELIABLE), random_rater: RANDOM, contrarian: CONTRARIAN, left_picker: LEFT}
    seed_crowd(batch, policies, comparisons=240 + gold, gold=gold, seed=5)
    report = agreement_services.agreement_recompute(batch_id=batch.id)
    rows = {row.annotator_id: row for row in AnnotatorQuality.objects.filter(report=report)}

    assert {"accuracy_near_chance", "agreement_near_chance"} & set(rows[random_rater.id].flags)
    assert {"accuracy_near_chance", "agreement_near_chance"} & set(rows[contrarian.id].flags)
    assert "position_bias" in rows[left_picker.id].flags
    assert not any(rows[a.id].flags for a in reliable), {a.id: rows[a.id].flags for a in reliable}
    assert (sum(r.gold_n for r in rows.values()) > 0) == bool(gold)

    aggregation = report.metrics["aggregation"]
    assert aggregation["dawid_skene_converged"]
    assert aggregation["dawid_skene_final_change"] < aggregation["dawid_skene_tolerance"]
    labels = list(ComparisonLabel.objects.filter(report=report).order_by("comparison_id"))
    assert len(labels) == aggregation["comparisons"] == 240
    table = agreement_services.rating_table(Rating.objects.filter(comparison__batch=batch))
    expected = comparison_labels(table).rows()
    assert [(label.comparison_id, label.majority, label.ds_label) for label in labels] == [
        (row["comparison"], row["majority"], row["ds_label"]) for row in expected
    ]
    assert [label.ds_posterior for label in labels] == pytest.approx([row["ds_posterior"] for row in expected])
    assert sum(label.ds_label != label.majority for label in labels) == aggregation["disagreements"]
