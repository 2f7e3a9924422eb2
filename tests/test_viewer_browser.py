"""The viewer in a real browser: headless Debian Chromium driven by Playwright.

The app runs on a loopback port in a thread (in-process engine), with sample executions.
Screenshots land in test-artifacts/screenshots/ for people to look at.
Needs ``apt-get install -y chromium`` (CI's .ci/run does it); skipped with the reason if
/usr/bin/chromium is missing.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from recorder.api import Durascope
from recorder.config import Settings
from recorder.demo import register_samples
from tests.conftest import register
from tests.test_viewer import XSS, register_xss
from viewer.server import build_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="Debian chromium is not installed (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Durascope, dict[str, str]]]:
    db = tmp_path_factory.mktemp("viewer") / "durascope.db"
    server, ds = build_server(Settings.from_env(database_url=f"sqlite:///{db}"), port=0, invoker="in-process")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        register_samples(ds)
        register_xss(ds)
        register(ds, "approval", "th_basic:approval")
        arns = {
            "hello": ds.start("hello", json.dumps({"name": "Ada"}), name="hello-ada"),
            "retry": ds.start("retry-then-succeed", "{}", name="retry-1"),
            "exhausted": ds.start("exhausted-retries", "{}", name="exhausted-1"),
            "map": ds.start("map-with-failures", json.dumps({"items": list(range(1, 9)), "tolerated_failures": 4}),
                            name="map-1"),
            "xss": ds.start("xss", json.dumps({"note": XSS}), name="xss-1"),
            "approval": ds.start("approval", json.dumps({"timeout": 600}), name="approval-1"),
        }
        for key in ("hello", "retry", "exhausted", "map", "xss"):
            ds.wait(arns[key], 60)
        ds.wait_for(lambda: ds.get_execution(arns["approval"])["Status"] == "RUNNING"
                    and any(e["EventType"] == "CallbackStarted" for e in ds.history(arns["approval"])), 30)
        yield f"http://127.0.0.1:{server.server_port}", ds, arns
    finally:
        server.shutdown()
        server.server_close()
        ds.close()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    pg = context.new_page()
    pg.dialogs = []  # type: ignore[attr-defined]
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))  # type: ignore[attr-defined]
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def shot(page, name: str, full: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full)


def exec_url(base: str, arn: str) -> str:
    return f"{base}/executions/{quote(arn, safe='/:')}"


def test_list_filter_and_open_an_execution(site, page) -> None:
    from playwright.sync_api import expect

    base, ds, arns = site
    page.goto(base + "/")
    expect(page.locator("table.executions tbody tr")).to_have_count(len(arns))
    shot(page, "list")

    page.select_option("select[name=status]", "FAILED")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"status=FAILED"))
    rows = page.locator("table.executions tbody tr")
    expect(rows).to_have_count(2)  # exhausted-1 and xss-1
    expect(page.locator("table.executions")).not_to_contain_text("hello-ada")
    shot(page, "list-filtered")

    page.goto(base + "/")
    page.click("text=retry-1")
    expect(page.locator(".exec-head h1")).to_contain_text("retry-1")
    expect(page.locator("#gantt .main-svg").first).to_be_visible()
    shot(page, "execution")
    shot(page, "execution-full", full=True)

    # Hover a bar of the operation lane (traces: invocation, suspended, then outcomes).
    bar = page.locator("#gantt g.trace.bars").nth(2).locator("path").first
    box = bar.bounding_box()
    assert box is not None
    page.locator("#gantt").scroll_into_view_if_needed()
    box = bar.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    hover = page.locator("#gantt .hoverlayer .hovertext")
    expect(hover.first).to_be_visible()
    expect(hover.first).to_contain_text("flaky-call")
    shot(page, "gantt-hover")

    # Clicking it opens and scrolls to the operation.
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page).to_have_url(re.compile(r"#op-[0-9a-f]+$"))
    op_id = page.url.rsplit("#op-", 1)[1]
    details = page.locator(f"details#op-{op_id}")
    expect(details).to_have_attribute("open", "")
    expect(details).to_be_in_viewport()
    expect(details).to_contain_text("glitch on attempt 1")
    shot(page, "operation-opened")

    page.goto(exec_url(base, arns["exhausted"]))
    page.click("text=Jump to the first failure")
    expect(page.locator("details.op[open]").first).to_contain_text("DownstreamUnavailable")
    shot(page, "first-failure")

    page.goto(exec_url(base, arns["map"]))
    expect(page.locator("#gantt .main-svg").first).to_be_visible()
    shot(page, "map-execution", full=True)

    page.goto(exec_url(base, arns["retry"]) + "/events")
    expect(page.locator("#event-1")).to_be_visible()
    shot(page, "events")
    assert page.dialogs == []


def test_send_a_callback_through_the_form(site, page) -> None:
    from playwright.sync_api import expect

    base, ds, arns = site
    page.goto(exec_url(base, arns["approval"]))
    form = page.locator("form.callback-form").first
    form.locator("textarea[name=payload]").fill("{oops")
    form.locator("button[value=success]").click()
    expect(page.locator(".form-error")).to_contain_text("not valid JSON")
    shot(page, "callback-error")

    page.locator("form.callback-form textarea[name=payload]").first.fill('{"approved": true, "by": "browser"}')
    page.locator("form.callback-form button[value=success]").first.click()
    expect(page.locator(".notice")).to_contain_text("Callback success sent")
    deadline = time.monotonic() + 30
    while page.locator(".exec-head .badge").inner_text() != "SUCCEEDED":
        assert time.monotonic() < deadline, "execution did not finish after the callback"
        page.wait_for_timeout(200)  # poll interval
        page.reload()
    expect(page.locator(".io")).to_contain_text('browser')
    shot(page, "callback-done")
    assert page.dialogs == []


def test_markup_in_user_data_never_runs(site, page) -> None:
    from playwright.sync_api import expect

    base, ds, arns = site
    for path in [exec_url(base, arns["xss"]), exec_url(base, arns["xss"]) + "/events",
                 exec_url(base, arns["xss"]) + "/logs", f"{base}/?q={quote(XSS)}"]:
        page.goto(path)
        page.wait_for_load_state("load")
        assert page.locator("img[src=x]").count() == 0, path
    page.goto(exec_url(base, arns["xss"]))
    expect(page.locator("#gantt .main-svg").first).to_be_visible()
    # Hover every bar: plotly renders hover text, which must stay text.
    for path in page.locator("#gantt g.trace.bars path").all():
        box = path.bounding_box()
        if box:
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.locator(".error-box").first).to_contain_text("<script>alert('x')</script>")
    shot(page, "xss", full=True)
    assert page.dialogs == []


def test_running_rows_update_live_without_a_reload(site, page) -> None:
    from playwright.sync_api import expect

    base, ds, _arns = site
    arn = ds.start("approval", json.dumps({"timeout": 600}), name=f"live-{int(time.time() * 1000)}")
    ds.wait_for(lambda: next((e["CallbackStartedDetails"]["CallbackId"] for e in ds.history(arn)
                              if e["EventType"] == "CallbackStarted"), None), 30)
    callback_id = next(e["CallbackStartedDetails"]["CallbackId"] for e in ds.history(arn)
                       if e["EventType"] == "CallbackStarted")
    page.goto(f"{base}/?function=approval")
    row = page.locator(f'tr[data-arn="{arn}"]')
    expect(row.locator(".badge")).to_have_text("RUNNING")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.wait_for_timeout(500)  # let the page's EventSource connect before the change happens
    ds.callback_success(callback_id, b'"live"')
    expect(row.locator(".badge")).to_have_text("SUCCEEDED", timeout=20_000)
    expect(row.locator("td.end")).not_to_have_text("—")
    assert navigations == [], "the row must change without a reload"
    shot(page, "list-live-update")
