"""Try the embedded demo as a newcomer would, against a running `make demo`.

Waits for the server to answer, logs in as the demo annotator in Debian's Chromium and rates the
next pair of "Week 1 · helpfulness" by keyboard, then, as the researcher, waits for the batch's
agreement report to count that rating. Nothing asks for a recompute: the worker's reconciler has to
notice the report is older than the newest rating. Exits non-zero with a message on any failure.

    python .ci/demo_smoke.py http://127.0.0.1:8000/
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar

PASSWORD = "preflab-demo"
BATCH = "Week 1 · helpfulness"


def wait_for_server(base: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(base + "login/", timeout=3) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    raise SystemExit(f"demo smoke: nothing answered HTTP 200 at {base}login/ within {timeout:.0f} s")


def api_token(base: str, username: str) -> str:
    request = urllib.request.Request(
        base + "api/auth/token/",
        data=json.dumps({"username": username, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)["token"]


def api_get(base: str, path: str, token: str) -> dict:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Token {token}"})
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    with opener.open(request, timeout=10) as answer:
        return json.load(answer)


def batch_id(base: str, token: str) -> int:
    page = api_get(base, "api/batches/?page_size=100", token)
    for batch in page.get("results", page):
        if batch["name"] == BATCH:
            return batch["id"]
    raise SystemExit(f"demo smoke: the demo has no batch named {BATCH!r}")


def rated_count(base: str, token: str, batch: int) -> int:
    try:
        return api_get(base, f"api/batches/{batch}/agreement/", token)["report"]["ratings_count"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return -1
        raise


def rate_one_pair_in_chromium(base: str, batch: int) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        page.set_default_timeout(30_000)
        page.goto(base + "login/")
        page.fill("input[name=username]", "annotator")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit], input[type=submit]")
        page.goto(f"{base}annotate/{batch}/")
        page.wait_for_selector("#pair:not([hidden])")
        before = page.inner_text("#today-count")
        page.keyboard.press("1")
        page.keyboard.press("s")
        page.keyboard.press("Enter")
        # A locator wait, not wait_for_function: that evaluates a string in the page, which the
        # pages' Content-Security-Policy forbids (no 'unsafe-eval').
        expect(page.locator("#today-count")).not_to_have_text(before, timeout=30_000)
        page.screenshot(path="var/demo-smoke.png")
        browser.close()


def main() -> None:
    base = sys.argv[1].rstrip("/") + "/"
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 900
    waited = wait_for_server(base, timeout)
    print(f"demo smoke: {base} answered after {waited:.0f} s")
    researcher = api_token(base, "researcher")
    batch = batch_id(base, researcher)
    before = rated_count(base, researcher, batch)
    rate_one_pair_in_chromium(base, batch)
    print(f"demo smoke: rated a pair of {BATCH!r} in Chromium (report counted {before} ratings before)")
    started = time.monotonic()
    while time.monotonic() - started < 120:
        now = rated_count(base, researcher, batch)
        if now > before:
            waited = time.monotonic() - started
            print(f"demo smoke: the agreement report caught up by itself ({now} ratings, {waited:.0f} s)")
            return
        time.sleep(2)
    raise SystemExit("demo smoke: the batch's agreement report did not count the new rating within 120 s")


if __name__ == "__main__":
    main()
