"""The replay check (and, later, statistics and cost) in a real browser: headless Debian
Chromium driven by Playwright, the app on a loopback port. Screenshots land in
test-artifacts/screenshots/. Skipped with the reason if /usr/bin/chromium is missing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.api import Durascope
from recorder.config import Settings
from tests.conftest import register
from tests.test_viewer_browser import ARGS, CHROMIUM, exec_url, shot
from viewer.server import build_server

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (apt-get install -y chromium)"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Durascope, str]]:
    tmp = tmp_path_factory.mktemp("insight")
    server, ds = build_server(
        Settings.from_env(database_url=f"sqlite:///{tmp}/durascope.db"), port=0, invoker="in-process"
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        register(ds, "orders", "th_replay:order_flow")
        arn = ds.start("orders", json.dumps({"marks": str(tmp / "marks")}), name="order-1")
        assert ds.wait(arn, 60).status == "SUCCEEDED"
        yield f"http://127.0.0.1:{server.server_port}", ds, arn
    finally:
        server.shutdown()
        server.server_close()
        ds.close()


@pytest.fixture
def page() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        yield pg
        browser.close()


def test_replay_check_button(site, page) -> None:
    from playwright.sync_api import expect

    base, ds, arn = site
    page.goto(exec_url(base, arn))
    page.click("#replay-check button[type=submit]")
    result = page.locator("#replay-check [data-replay-result]")
    expect(result).to_have_attribute("data-replay-result", "deterministic")
    expect(result).to_contain_text("deterministic: 5 operations replayed")
    expect(page.locator(".exec-head h1")).to_contain_text("order-1")  # in place, on the execution page
    result.scroll_into_view_if_needed()
    shot(page, "replay-check-deterministic")

    # Deploy a changed handler (register it anew) and check again.
    register(ds, "orders", "th_replay:order_flow_renamed")
    try:
        page.click("#replay-check button[type=submit]")
        expect(result).to_have_attribute("data-replay-result", "diverged")
        expect(result).to_contain_text("mismatch at position 4 under the handler: then STEP 'charge'; now STEP 'bill'")
        result.scroll_into_view_if_needed()
        shot(page, "replay-check-diverged")
    finally:
        register(ds, "orders", "th_replay:order_flow")


def test_function_statistics_page_draws_its_charts(site, page) -> None:
    from playwright.sync_api import expect

    base = site[0]
    page.goto(base + "/functions")
    expect(page.locator("tr[data-function=orders]")).to_contain_text("th_replay:order_flow")
    shot(page, "functions-index")
    page.click("tr[data-function=orders] a")
    for key in ("executions", "steps", "time", "invocations", "callbacks"):
        # Drawn by the plotly.js this server serves (the page would stay blank without it).
        expect(page.locator(f"#chart-{key}")).to_have_attribute("data-drawn", "1")
        expect(page.locator(f"#chart-{key} .main-svg").first).to_be_visible()
    expect(page.locator("tr[data-step=charge]")).to_contain_text("1")
    shot(page, "function-statistics", full=True)


def test_cost_on_the_execution_and_function_pages(site, page) -> None:
    from playwright.sync_api import expect

    base, _, arn = site
    page.goto(exec_url(base, arn))
    section = page.locator("#cost")
    expect(section.locator("[data-cost=lambda]")).to_contain_text("$0.0000")
    expect(section.locator("[data-cost=sfn]")).to_have_text("$0.0001")  # 3 steps and a wait: 4 transitions
    section.scroll_into_view_if_needed()
    shot(page, "execution-cost")
    page.goto(base + "/functions/orders")
    expect(page.locator("#cost")).to_contain_text("per 1,000 executions")
    expect(page.locator("#cost [data-cost=sfn]")).to_have_text("$0.10")
