"""Agreement API: reports, per-annotator tables and their CSV, gold marking, batch settings, scoping."""

import csv
import io

import pytest

from agreement import services as agreement_services
from agreement.models import AgreementReport, ReportScope
from annotation import services
from annotation.models import Comparison
from tests.factories import (
    AnnotatorFactory,
    BatchFactory,
    ComparisonFactory,
    UserFactory,
    VendorFactory,
    VendorManagerFactory,
)
from tests.helpers import client_for

pytestmark = pytest.mark.django_db


def rows_of(response) -> list[dict]:
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


@pytest.fixture
def rated_batch():
    """Two comparisons rated by two Acme annotators and one of another vendor, then recomputed."""
    acme, other = VendorFactory(name="Acme"), VendorFactory(name="Other")
    people = [AnnotatorFactory(vendor=acme), AnnotatorFactory(vendor=acme), AnnotatorFactory(vendor=other)]
    batch = BatchFactory(overlap=3)
    for comparison in ComparisonFactory.create_batch(2, batch=batch):
        for index, annotator in enumerate(people):
            lease = services.assignment_next(annotator=annotator, batch=batch)
            assert lease.assignment.comparison_id == comparison.pk
            services.rating_submit(
                annotator=annotator,
                assignment_id=lease.assignment.pk,
                chosen_response_id=comparison.response_a_id if index < 2 else comparison.response_b_id,
                strength="better",
                seconds_spent=30 + index,
                idempotency_key=f"{comparison.pk}-{annotator.pk}",
            )
    agreement_services.agreement_recompute(batch_id=batch.pk)
    return batch, people, acme, other


def test_researcher_reads_the_batch_report_and_every_table_as_csv(rated_batch):
    batch, people, *_ = rated_batch
    api = client_for(UserFactory())
    body = api.get(f"/api/batches/{batch.pk}/agreement/").json()
    assert body["report"]["scope"] == "batch" and body["report"]["ratings_count"] == 6
    assert body["freshness"] == {"ratings_now": 6, "newer_ratings": 0, "changed": False, "pending": False}
    ac2 = next(row for row in body["metrics"] if row["statistic"] == "gwet_ac2")
    assert ac2["coefficient"] == body["report"]["metrics"]["scale"]["gwet_ac2"]["coefficient"]

    report_id = body["report"]["id"]
    metrics = rows_of(api.get(f"/api/agreement-reports/{report_id}/metrics/?format=csv"))
    assert {"measure", "statistic", "coefficient", "standard_error", "ci_low", "ci_high"} <= set(metrics[0])
    assert any(row["statistic"] == "gwet_ac2" for row in metrics)

    response = api.get(f"/api/agreement-reports/{report_id}/annotators/?format=csv")
    assert f"annotator-quality-report-{report_id}.csv" in response["Content-Disposition"]
    annotators = rows_of(response)
    assert {row["annotator"] for row in annotators} == {p.pseudonym for p in people}
    dissenter = next(row for row in annotators if row["annotator"] == people[2].pseudonym)
    assert float(dissenter["agreement"]) == 0.0 and dissenter["agreement_n"] == "2"

    strengths = rows_of(api.get(f"/api/agreement-reports/{report_id}/strengths/?format=csv"))
    assert [row["value"] for row in strengths] == ["4", "3", "2", "1", "-1", "-2", "-3", "-4"]
    assert strengths[1]["count"] == "4" and strengths[6]["count"] == "2"  # A better x4, B better x2

    trend = rows_of(api.get("/api/agreement-reports/trend/?format=csv"))
    assert [row["batch_name"] for row in trend] == [batch.name]
    history = rows_of(api.get(f"/api/agreement-reports/annotator-history/?annotator={people[0].pk}&format=csv"))
    assert [row["batch"] for row in history] == [batch.name]
    assert api.get("/api/agreement-reports/annotator-history/?annotator=x").status_code == 400


def test_vendor_managers_see_only_their_people_and_annotators_nothing(rated_batch):
    batch, people, acme, other = rated_batch
    manager = client_for(VendorManagerFactory(vendor=acme))
    body = manager.get(f"/api/batches/{batch.pk}/agreement/").json()
    assert body["report"]["scope"] == "batch_vendor" and body["report"]["vendor"] == acme.pk
    assert body["report"]["ratings_count"] == 4
    report_id = body["report"]["id"]
    names = {row["annotator"] for row in manager.get(f"/api/agreement-reports/{report_id}/annotators/").json()}
    assert names == {people[0].pseudonym, people[1].pseudonym}
    # The whole batch's report and the other vendor's are not theirs to read.
    batch_report = AgreementReport.objects.get(scope=ReportScope.BATCH, batch=batch)
    other_report = AgreementReport.objects.get(scope=ReportScope.BATCH_VENDOR, vendor=other)
    assert manager.get(f"/api/agreement-reports/{batch_report.pk}/").status_code == 404
    assert manager.get(f"/api/agreement-reports/{other_report.pk}/annotators/").status_code == 404
    listed = manager.get("/api/agreement-reports/").json()["results"]
    assert {r["vendor"] for r in listed} == {acme.pk}
    assert manager.get(f"/api/agreement-reports/annotator-history/?annotator={people[2].pk}").json() == []
    assert manager.post(f"/api/batches/{batch.pk}/agreement/recompute/").status_code == 403

    annotator = client_for(people[0])
    assert annotator.get(f"/api/batches/{batch.pk}/agreement/").status_code == 403
    assert annotator.get("/api/agreement-reports/").status_code == 403
    assert annotator.get(f"/api/agreement-reports/{report_id}/annotators/?format=csv").status_code == 403


def test_filter_reports_through_the_api(rated_batch, django_capture_on_commit_callbacks):
    batch, _people, acme, _other = rated_batch
    researcher = client_for(UserFactory())
    with django_capture_on_commit_callbacks(execute=True):
        created = researcher.post("/api/agreement-reports/", {"batches": [batch.pk]}, format="json")
    assert created.status_code == 202 and created.json()["scope"] == "filter"
    report = researcher.get(f"/api/agreement-reports/{created.json()['id']}/").json()
    assert report["status"] == "ready" and report["ratings_count"] == 6
    refused = researcher.post("/api/agreement-reports/", {"batches": [10**6]}, format="json")
    assert refused.status_code == 404 and refused.json()["field"] == "batches"  # no such batch
    backwards = researcher.post(
        "/api/agreement-reports/", {"week_from": "2026-02-02", "week_to": "2026-01-05"}, format="json"
    )
    assert backwards.status_code == 400 and "first week" in backwards.json()["detail"]

    manager = client_for(VendorManagerFactory(vendor=acme))
    with django_capture_on_commit_callbacks(execute=True):
        mine = manager.post("/api/agreement-reports/", {"focus": "helpfulness"}, format="json").json()
    assert mine["filters"]["vendor"] == acme.pk
    assert manager.get(f"/api/agreement-reports/{mine['id']}/").json()["ratings_count"] == 4


def test_gold_marking_promotion_and_recompute_endpoints(rated_batch, django_capture_on_commit_callbacks):
    batch, *_ = rated_batch
    api = client_for(UserFactory())
    comparison = Comparison.objects.filter(batch=batch).first()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        marked = api.post(f"/api/comparisons/{comparison.pk}/gold/", {"choice": "b", "strength": "better"})
    assert marked.status_code == 200 and marked.json()["is_gold"] and marked.json()["gold_choice"] == "b"
    assert len(callbacks) == 1  # the batch's agreement follows
    assert api.post(f"/api/comparisons/{comparison.pk}/gold/", {"choice": "left"}).status_code == 400
    unmarked = api.delete(f"/api/comparisons/{comparison.pk}/gold/")
    assert unmarked.status_code == 200 and not unmarked.json()["is_gold"]
    assert unmarked.json()["label_choice"] == "a"  # back to its majority label
    assert api.post(f"/api/batches/{batch.pk}/promote-gold/", {}, format="json").json() == {"promoted": 0}
    assert api.post(f"/api/batches/{batch.pk}/agreement/recompute/").status_code == 202
    stranger = client_for(AnnotatorFactory())
    assert stranger.post(f"/api/comparisons/{comparison.pk}/gold/", {"choice": "a"}).status_code == 403
    assert client_for(VendorManagerFactory()).post(f"/api/batches/{batch.pk}/promote-gold/").status_code == 403


def test_batch_check_rates_are_settings_of_the_batch():
    api = client_for(UserFactory())
    created = api.post(
        "/api/batches/", {"name": "Week 9", "focus": "helpfulness", "gold_rate": 0.1, "repeat_rate": 0.05}
    )
    assert created.status_code == 201 and (created.json()["gold_rate"], created.json()["repeat_rate"]) == (0.1, 0.05)
    too_much = api.post("/api/batches/", {"name": "Week 10", "focus": "safety", "gold_rate": 0.4, "repeat_rate": 0.2})
    assert too_much.status_code == 400 and too_much.json()["field"] == "repeat_rate"
    batch_id = created.json()["id"]
    assert api.patch(f"/api/batches/{batch_id}/", {"repeat_rate": 0.45}, format="json").status_code == 400
    patched = api.patch(f"/api/batches/{batch_id}/", {"repeat_rate": 0.2}, format="json")
    assert patched.status_code == 200 and patched.json()["repeat_rate"] == 0.2


def test_no_report_yet_is_a_clear_404():
    batch = BatchFactory()
    response = client_for(UserFactory()).get(f"/api/batches/{batch.pk}/agreement/")
    assert response.status_code == 404 and "computed once a comparison is complete" in response.json()["detail"]


def test_researchers_read_each_comparisons_majority_and_dawid_skene_label(rated_batch):
    batch, people, acme, _ = rated_batch
    report = AgreementReport.objects.get(scope=ReportScope.BATCH, batch=batch)
    api = client_for(UserFactory())
    labels = api.get(f"/api/agreement-reports/{report.pk}/labels/").json()
    comparisons = sorted(Comparison.objects.filter(batch=batch).values_list("pk", flat=True))
    assert [row["comparison"] for row in labels] == comparisons
    for row in labels:
        assert (row["votes_a"], row["votes_b"], row["majority"]) == (2, 1, "a")
        assert row["ds_label"] in {"a", "b"} and 0.5 <= row["ds_posterior"] <= 1
        expected = row["ds_posterior_a"] if row["ds_label"] == "a" else 1 - row["ds_posterior_a"]
        assert row["ds_posterior"] == pytest.approx(expected)
    table = rows_of(api.get(f"/api/agreement-reports/{report.pk}/labels/?format=csv"))
    assert [int(row["comparison"]) for row in table] == comparisons
    assert list(table[0]) == [
        "comparison",
        "votes_a",
        "votes_b",
        "majority",
        "ds_label",
        "ds_posterior",
        "ds_posterior_a",
    ]
    assert float(table[0]["ds_posterior"]) == pytest.approx(labels[0]["ds_posterior"])
    # Labels say which response is right: neither vendor managers nor annotators read them.
    manager = client_for(VendorManagerFactory(vendor=acme))
    vendor_report = AgreementReport.objects.get(scope=ReportScope.BATCH_VENDOR, batch=batch, vendor=acme)
    assert manager.get(f"/api/agreement-reports/{vendor_report.pk}/labels/").status_code == 403
    assert client_for(people[0]).get(f"/api/agreement-reports/{report.pk}/labels/").status_code == 403
