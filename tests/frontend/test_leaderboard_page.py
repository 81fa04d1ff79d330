"""The variant leaderboard in Debian's Chromium: a researcher reaches it from the navigation, reads
the ranking, the warnings about a disconnected graph and thin cells, the win rates and the CSV, and
narrows the scope; annotators get neither the link nor the page (it names the models)."""

import os

import pytest
from django.utils import timezone

from annotation.models import ComparisonStatus
from tests.factories import (
    AnnotatorFactory,
    BatchFactory,
    ComparisonFactory,
    ResponseFactory,
    UserFactory,
    VariantFactory,
)
from tests.helpers import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def labelled(batch, a, b, choice, strength="better", t_a=0.6, t_b=1.0):
    return ComparisonFactory(
        batch=batch,
        response_a=ResponseFactory(variant=a, temperature=t_a),
        response_b=ResponseFactory(variant=b, temperature=t_b),
        status=ComparisonStatus.COMPLETE,
        label_choice=choice,
        label_strength=strength,
        label_vote="split",
        labelled_at=timezone.now(),
    )


@pytest.fixture
def batches():
    chat, base, tiny, other = (VariantFactory(name=n) for n in ("chat-rlhf", "chat-sft", "tiny", "outsider"))
    week1 = BatchFactory(name="Week 1 · helpfulness")
    for choice, strength, n in (("a", "better", 14), ("b", "slightly_better", 5), ("a", "negligibly_better", 4)):
        for _ in range(n):
            labelled(week1, chat, base, choice, strength)
    for _ in range(9):
        labelled(week1, base, tiny, "a", t_a=0.6, t_b=0.6)
    for _ in range(3):
        labelled(week1, base, tiny, "b", t_a=0.6, t_b=0.6)
    week2 = BatchFactory(name="Week 2 · helpfulness", week=week1.week.replace(year=week1.week.year - 1))
    for _ in range(3):
        labelled(week2, other, tiny, "a")
    return week1, week2


def test_researcher_reads_the_leaderboard(page, live_server, batches):
    week1, _week2 = batches
    UserFactory(username="res")
    log_in(page, live_server, "res")
    page.click("nav >> text=Leaderboard")
    page.wait_for_selector("svg.plot")

    warnings = page.locator(".leaderboard-warning").all_inner_texts()
    assert any("disconnected (3 parts)" in w and "outsider v1 at T=0.6" in w for w in warnings)
    assert any("fewer than 10 comparisons" in w for w in warnings)
    first = page.locator(".leaderboard-table tbody tr").first.inner_text()
    assert "chat-rlhf v1" in first and "0.6" in first
    assert (
        page.locator(".win-matrix tbody tr").count()
        == page.locator(".leaderboard-table").first.locator("tbody tr").count()
    )

    page.select_option("select[name=batch]", label=week1.name)
    page.select_option("select[name=by]", value="variant")
    page.click("text=Show")
    page.wait_for_load_state("networkidle")
    assert "batch Week 1 · helpfulness" in page.inner_text("main")
    assert not any("disconnected" in w for w in page.locator(".leaderboard-warning").all_inner_texts())
    names = [
        row.split("\t")[1] for row in page.locator(".leaderboard-table").first.locator("tbody tr").all_inner_texts()
    ]
    assert names == ["chat-rlhf v1", "chat-sft v1", "tiny v1"]
    assert "0.70" in page.locator(".win-matrix tbody tr").first.inner_text()  # (14 + 2) / 23 rounds to 0.70
    if os.environ.get("PREFLAB_SCREENSHOTS"):
        page.screenshot(path=os.environ["PREFLAB_SCREENSHOTS"] + "/leaderboard.png", full_page=True)

    csv_link = page.locator("a.csv").first.get_attribute("href")
    download = page.request.get(f"{live_server.url}{csv_link}")
    assert download.ok and download.headers["content-type"].startswith("text/csv")
    lines = download.text().splitlines()
    assert lines[0].startswith("rank,item,variant_id") and "chat-rlhf v1" in lines[1]


def test_annotators_get_no_leaderboard(page, live_server, batches):
    AnnotatorFactory(username="ann")
    log_in(page, live_server, "ann")
    assert page.locator("nav >> text=Leaderboard").count() == 0
    answer = page.goto(f"{live_server.url}/research/leaderboard/")
    assert answer.status == 403
    assert "chat-rlhf" not in page.content()
