"""The 403, 404 and 500 pages in Debian's Chromium: the layout and navigation, the reason in plain
words, a way back, and no Content-Security-Policy violation on the pages people use."""

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.views.defaults import server_error
from playwright.sync_api import expect

from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory, UserFactory, VendorManagerFactory
from tests.helpers import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def strict_page(chromium_browser):
    """A page that obeys the Content-Security-Policy (the shared `page` fixture bypasses it), and the
    policy violations its console reports."""
    context = chromium_browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.csp_violations = []
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and page.csp_violations.append(message.text),
    )
    yield page
    context.close()


def test_a_403_shows_the_reason_the_view_gave_with_the_navigation_and_a_way_back(page, live_server):
    AnnotatorFactory(username="ann")
    log_in(page, live_server, "ann")
    answer = page.goto(f"{live_server.url}/research/")
    assert answer.status == 403
    assert page.inner_text("h1") == "You cannot open this page"
    assert page.inner_text(".reason") == "This page is not for your role."  # raised by role_required
    assert page.is_visible("header.topbar nav >> text=My batches")
    assert "ann · Annotator" in page.inner_text("header.topbar .who")
    page.click("text=Back to your start page")
    page.wait_for_url(f"{live_server.url}/annotate/")


def test_a_404_names_the_address_in_the_layout_with_a_way_back(page, live_server):
    UserFactory(username="rhea")
    log_in(page, live_server, "rhea")
    answer = page.goto(f"{live_server.url}/research/batches/999999/")
    assert answer.status == 404
    assert page.inner_text("h1") == "There is nothing here"
    assert "/research/batches/999999/" in page.inner_text(".reason")
    assert page.is_visible("header.topbar nav >> text=Datasets")
    page.click("text=Back to your start page")
    page.wait_for_url(f"{live_server.url}/research/")


def test_a_500_is_styled_and_needs_neither_the_database_nor_the_request(page, live_server, settings):
    settings.ROOT_URLCONF = "tests.frontend.broken_urls"
    answer = page.goto(f"{live_server.url}/broken/")
    assert answer.status == 500
    assert page.inner_text("h1") == "Something went wrong on our side"
    assert page.evaluate("getComputedStyle(document.querySelector('.card')).borderRadius") != "0px"  # the stylesheet
    assert "RuntimeError" not in page.content() and "Traceback" not in page.content()
    page.click("text=back to your start page")
    page.wait_for_url(f"{live_server.url}/login/?next=/")
    # Rendered as Django's handler renders it: no request context, not one query.
    with CaptureQueriesContext(connection) as queries:
        rendered = server_error(RequestFactory().get("/anything/"))
    assert rendered.status_code == 500 and b"Something went wrong on our side" in rendered.content
    assert len(queries) == 0


def test_the_pages_run_under_the_content_security_policy(strict_page, live_server):
    page = strict_page
    UserFactory(username="rhea")
    manager = VendorManagerFactory(username="boss")
    AnnotatorFactory(username="ann")
    batch = BatchFactory(name="Week 1")
    ComparisonFactory(batch=batch, prompt="Name a prime number.")
    log_in(page, live_server, "ann")
    page.goto(f"{live_server.url}/annotate/{batch.pk}/")
    assert page.wait_for_selector("#pair:not([hidden])")  # rate.js ran and fetched the pair
    page.keyboard.press("1")
    page.keyboard.press("s")
    page.keyboard.press("Enter")
    expect(page.locator("#today-count")).to_have_text("1")
    page.click("text=Log out")

    log_in(page, live_server, "rhea")
    paths = ["/research/", f"/research/batches/{batch.pk}/", "/research/datasets/", "/research/models/"]
    paths += ["/research/reward-models/", "/quality/", "/quizzes/manage/"]
    for path in paths:
        answer = page.goto(f"{live_server.url}{path}")
        assert answer.status == 200, path
        assert answer.headers["content-security-policy"].startswith("default-src 'self'")
        page.wait_for_load_state("networkidle")
    # The candidates page's vendor picker sends its form from a module, not an inline handler.
    page.goto(f"{live_server.url}/vendor/candidates/")
    page.select_option("select[name=vendor]", str(manager.vendor_id))
    page.wait_for_url(f"**/vendor/candidates/?vendor={manager.vendor_id}")
    # The API docs: Swagger UI starts from a script file and draws the operations.
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock-tag-section", timeout=30_000)
    assert page.csp_violations == []
