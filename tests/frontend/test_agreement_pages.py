"""The agreement dashboards in Debian's Chromium: a researcher reads a batch's figures, plots and
flagged annotators; a vendor manager sees their own people only; annotators are refused."""

import pytest

from agreement.models import AgreementReport, ReportScope
from tests.agreement.crowd import LEFT, RANDOM, RELIABLE, seed_crowd
from tests.factories import AnnotatorFactory, BatchFactory, UserFactory, VendorFactory, VendorManagerFactory
from tests.helpers import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def rated():
    """A batch rated by four reliable annotators, a random one and a left-picker, in two vendors.
    Every completed comparison queues a recompute, which runs in-process (no Redis in these tests)."""
    acme, other = VendorFactory(name="Acme Labelling"), VendorFactory(name="Northwind Data")
    reliable = [AnnotatorFactory(vendor=acme if i < 2 else other) for i in range(4)]
    random_rater, left_picker = AnnotatorFactory(vendor=acme), AnnotatorFactory(vendor=other)
    batch = BatchFactory(name="Week 1 · helpfulness", gold_rate=0.1, repeat_rate=0.1)
    policies = {**dict.fromkeys(reliable, RELIABLE), random_rater: RANDOM, left_picker: LEFT}
    seed_crowd(batch, policies, comparisons=28, gold=4, seed=5, prompts=True)
    return batch, acme, [*reliable, random_rater, left_picker], left_picker


def test_researcher_reads_a_batch_dashboard(page, live_server, rated):
    batch, _acme, people, left_picker = rated
    report = AgreementReport.objects.get(scope=ReportScope.BATCH, batch=batch)
    UserFactory(username="res")
    log_in(page, live_server, "res")
    page.click("nav >> text=Quality")
    assert page.locator("svg.plot").count() == 1
    page.get_by_role("link", name=batch.name).click()
    page.wait_for_selector("#annotators")

    ac2 = report.metrics["scale"]["gwet_ac2"]["coefficient"]
    assert page.inner_text(".headline .lead .big").startswith(f"{ac2:.3f}")
    table = page.inner_text("table.metrics")
    for name in ("Gwet's AC1", "Gwet's AC2 (ordinal weights)", "Fleiss' kappa", "Krippendorff's alpha (ordinal)"):
        assert name in table
    assert page.locator("svg.plot").count() == 3  # trend, strengths, annotators
    assert "Llama 2 helpfulness AC2 0.37–0.55" in page.locator("svg.plot").first.text_content()
    assert page.inner_text("#freshness") == "Up to date"
    aggregation = report.metrics["aggregation"]
    convergence = f"{aggregation['dawid_skene_iterations']} iterations, last change "
    convergence += f"{aggregation['dawid_skene_final_change']:.1e} against a tolerance of 0.0001"
    assert convergence in page.inner_text("main")

    flagged = page.locator(f"tr.flagged[data-annotator='{left_picker.pseudonym}']")
    assert flagged.count() == 1
    assert "picks one side more often than chance explains" in flagged.inner_text()
    assert page.locator("#annotators tbody tr").count() == len(people)

    csv_link = page.locator("#annotators a.csv").get_attribute("href")
    download = page.request.get(f"{live_server.url}{csv_link}")
    assert download.ok and download.headers["content-type"].startswith("text/csv")
    assert left_picker.pseudonym in download.text()

    page.click("text=Recompute now")
    page.wait_for_selector(".notice")
    assert "Recompute queued" in page.inner_text(".notice")

    page.get_by_role("link", name=left_picker.pseudonym).click()
    page.wait_for_selector("h1")
    assert left_picker.pseudonym in page.inner_text("h1")
    assert "100%" in page.inner_text(".headline")  # every choice on the left
    assert page.locator("svg.plot").count() == 1


def test_researcher_asks_for_a_filter_report(page, live_server, rated):
    _batch, acme, *_ = rated
    UserFactory(username="res2")
    log_in(page, live_server, "res2")
    page.goto(f"{live_server.url}/quality/")
    page.select_option("select[name=vendor]", str(acme.pk))
    page.click("button:has-text('Compute')")
    page.wait_for_selector("#annotators")  # computed in-process before the redirect landed
    assert "People of Acme Labelling" in page.inner_text("main")
    vendors = {cell.strip() for cell in page.locator("#annotators tbody td:nth-child(2)").all_inner_texts()}
    assert vendors == {"Acme Labelling"}


def test_vendor_manager_sees_only_their_people(page, live_server, rated):
    batch, acme, people, _left = rated
    VendorManagerFactory(username="boss", vendor=acme)
    log_in(page, live_server, "boss")
    page.click("nav >> text=Quality")
    page.get_by_role("link", name=batch.name).click()
    page.wait_for_selector("#annotators")
    shown = set(page.locator("#annotators tbody tr").evaluate_all("rows => rows.map(r => r.dataset.annotator)"))
    assert shown == {p.pseudonym for p in people if p.vendor_id == acme.pk}
    assert "Recompute now" not in page.content() and "Gold and repeats" not in page.content()
    outsider = next(p for p in people if p.vendor_id != acme.pk)
    assert page.goto(f"{live_server.url}/quality/annotators/{outsider.pk}/").status == 404


def test_annotators_are_refused(page, live_server):
    AnnotatorFactory(username="ann")
    log_in(page, live_server, "ann")
    assert "Quality" not in page.inner_text("header nav")
    assert page.goto(f"{live_server.url}/quality/").status == 403
