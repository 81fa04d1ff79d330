"""The background-work spine (core.jobs): sending after commit, claims, the reconciler's passes.

These run on the test database with a broker that does not answer (a closed port) or eagerly; the
fault tests next to this file kill real workers and stop real servers."""

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from agreement import services as agreement_services
from annotation.models import Batch
from core import jobs
from preference_data.models import DatasetBuild
from preference_data.services.builds import BUILD
from tests.conftest import use_broker
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory
from tests.preference_data.labelled import rate

from .processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def dead_broker(settings):
    """Celery pointed at a Redis port where nothing listens: every send fails at once."""
    from config.celery import app

    previous = (app.conf.broker_url, app.conf.broker_transport_options, app.conf.task_always_eager)
    use_broker(f"redis://127.0.0.1:{free_port()}/0", settings.PREFLAB_REDIS_TRANSPORT_OPTIONS)
    app.conf.task_always_eager = False
    yield
    use_broker(*previous[:2])
    app.conf.task_always_eager = previous[2]


def build(**fields) -> DatasetBuild:
    return DatasetBuild.objects.create(name="spine", **fields)


def test_a_send_the_broker_refuses_leaves_the_row_queued_and_noted(dead_broker):
    row = build()
    started = time.monotonic()
    with transaction.atomic():
        jobs.enqueue(BUILD, [row.pk])  # after commit; the commit itself must not fail
    row.refresh_from_db()
    assert row.status == "queued" and row.dispatch_count == 1 and row.dispatched_at is not None
    assert time.monotonic() - started < 2  # a dead broker is reported at once, not waited on


def test_the_reconciler_sends_again_with_doubling_backoff(dead_broker, settings):
    settings.PREFLAB_JOBS_RESEND_SECONDS = 10
    settings.PREFLAB_JOBS_RESEND_MAX_SECONDS = 40
    assert [jobs.resend_delay(n) for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 40, 40]
    row = build()
    kind = jobs.kind(BUILD)
    now = timezone.now()
    assert jobs.resend_unpicked(kind, now) == [row.pk]  # never sent: sent at once
    assert jobs.resend_unpicked(kind, now + timedelta(seconds=5)) == []
    assert jobs.resend_unpicked(kind, now + timedelta(seconds=11)) == [row.pk]
    assert jobs.resend_unpicked(kind, now + timedelta(seconds=25)) == []  # second wait is 20 s
    row.refresh_from_db()
    assert row.dispatch_count == 2


def test_a_live_claim_keeps_a_second_delivery_out_and_a_stale_one_is_taken_over(settings):
    settings.PREFLAB_JOBS_STALE_SECONDS = 30
    row = build()
    now = timezone.now()
    assert jobs.claim(BUILD, row.pk, now=now) == 1
    assert jobs.claim(BUILD, row.pk, now=now + timedelta(seconds=10)) is None  # heartbeat still fresh
    assert jobs.claim(BUILD, row.pk, now=now + timedelta(seconds=31)) == 2  # its worker died
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("running", 2)


def test_lost_work_goes_back_to_the_queue_then_fails_after_its_last_attempt(dead_broker, settings):
    settings.PREFLAB_JOBS_STALE_SECONDS = 30
    settings.PREFLAB_JOBS_MAX_ATTEMPTS = 2
    kind = jobs.kind(BUILD)
    now = timezone.now()
    row = build(status="running", attempts=1, heartbeat_at=now - timedelta(seconds=31))
    fresh = build(status="running", attempts=1, heartbeat_at=now - timedelta(seconds=5))
    assert jobs.recover_lost(kind, now) == [row.pk]
    row.refresh_from_db()
    assert (row.status, row.dispatch_count) == ("queued", 1)
    fresh.refresh_from_db()
    assert fresh.status == "running"  # its worker is alive: left alone
    assert jobs.claim(BUILD, row.pk, now=now) == 2
    assert row.pk not in jobs.recover_lost(kind, now + timedelta(seconds=31))  # attempt 2 of 2 lost: failed
    row.refresh_from_db()
    assert row.status == "failed" and "worker stopped after attempt 2" in row.error


def test_one_failing_step_does_not_stop_the_others(settings):
    seen = []
    jobs.register_step("tests.broken", lambda now: 1 / 0)
    jobs.register_step("tests.working", lambda now: seen.append(now) or "ok")
    try:
        summary = jobs.reconcile()
    finally:
        jobs.registry.steps.pop("tests.broken")
        jobs.registry.steps.pop("tests.working")
    assert summary["tests.broken"] == {"error": True} and summary["tests.working"] == "ok" and seen


def test_agreement_is_asked_for_when_the_report_is_older_than_the_newest_rating(dead_broker, settings):
    settings.PREFLAB_AGREEMENT_SLACK_SECONDS = 2
    settings.PREFLAB_JOBS_RESEND_SECONDS = 60
    batch = BatchFactory()
    comparison = ComparisonFactory(batch=batch)
    assert agreement_services.agreement_reconcile() == []  # no ratings, nothing to compute

    rate(comparison, [AnnotatorFactory()], [("a", "better", "")])
    now = timezone.now()
    assert agreement_services.agreement_reconcile(now) == [batch.pk]
    assert agreement_services.agreement_reconcile(now + timedelta(seconds=30)) == []  # asked, pending
    assert agreement_services.agreement_reconcile(now + timedelta(seconds=61)) == [batch.pk]  # lost: again

    Batch.objects.filter(pk=batch.pk).update(agreement_requested_at=None)
    report = agreement_services.agreement_recompute(batch_id=batch.pk, now=now + timedelta(seconds=5))
    assert report.ratings_count == 1
    assert agreement_services.agreement_reconcile(now + timedelta(seconds=10)) == []  # up to date
