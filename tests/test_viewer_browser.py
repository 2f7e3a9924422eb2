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
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason="Debian chromium is not installed (apt-get install -y chromium)"
)


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
            "map": ds.start(
                "map-with-failures",
                json.dumps({"items": list(range(1, 9)), "fail_indices": [2, 5], "tolerated_failures": 4}),
                name="map-1",
            ),
            "xss": ds.start("xss", json.dumps({"note": XSS}), name="xss-1"),
            "approval": ds.start("approval", json.dumps({"timeout": 600}), name="approval-1"),
        }
        for key in ("hello", "retry", "exhausted", "map", "xss"):
            ds.wait(arns[key], 60)
        ds.wait_for(
            lambda: (
                ds.get_execution(arns["approval"])["Status"] == "RUNNING"
                and any(e["EventType"] == "CallbackStarted" for e in ds.history(arns["approval"]))
            ),
            30,
        )
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
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
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
    expect(page.locator("#timeline .tl").first).to_be_visible()
    shot(page, "execution")
    shot(page, "execution-full", full=True)

    # Hover the step's bar: its attempt, outcome and error show beside the pointer.
    bar = page.locator("#timeline .tl-row[data-op] a.bar").first
    bar.scroll_into_view_if_needed()
    box = bar.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    hover = page.locator(".tl-tooltip")
    expect(hover).to_be_visible()
    expect(hover).to_contain_text("flaky-call")
    shot(page, "timeline-hover")

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
    # Iterations nest under the map, which says how they ended; the failing path is marked.
    group = page.locator("#timeline details.tl-group").first
    expect(group.locator("> summary")).to_contain_text("8 iterations")
    expect(group.locator("> summary .counts")).to_contain_text("failed")
    expect(page.locator("#timeline details.tl-group.failing").first).to_have_attribute("open", "")
    closed = page.locator("#timeline details.tl-group:not(.failing)").first
    expect(closed).not_to_have_attribute("open", "")
    closed.locator("> summary .twisty").click()
    expect(closed).to_have_attribute("open", "")
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
    # The notice is for the action just done: it leaves the address, so a reload does not repeat it.
    expect(page).not_to_have_url(re.compile(r"notice="))
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    # The page follows the execution to its end without a reload.
    expect(page.locator(".exec-head .badge").first).to_have_text("SUCCEEDED", timeout=30_000)
    expect(page.locator(".io")).to_contain_text("browser")
    expect(page.locator("#waiting")).to_have_count(0)
    assert navigations == [], "the page must follow the execution without a reload"
    shot(page, "callback-done")
    page.reload()
    expect(page.locator(".exec-head .badge").first).to_have_text("SUCCEEDED")
    expect(page.locator(".notice")).to_have_count(0)
    assert page.dialogs == []


def test_markup_in_user_data_never_runs(site, page) -> None:
    from playwright.sync_api import expect

    base, ds, arns = site
    for path in [
        exec_url(base, arns["xss"]),
        exec_url(base, arns["xss"]) + "/events",
        exec_url(base, arns["xss"]) + "/logs",
        f"{base}/?q={quote(XSS)}",
    ]:
        page.goto(path)
        page.wait_for_load_state("load")
        assert page.locator("img[src=x]").count() == 0, path
    page.goto(exec_url(base, arns["xss"]))
    # Hover every bar: the hover text must stay text.
    for bar in page.locator("#timeline a.bar").all():
        box = bar.bounding_box()
        if box:
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert page.locator(".tl-tooltip img").count() == 0
    expect(page.locator(".error-box").first).to_contain_text("<script>alert('x')</script>")
    shot(page, "xss", full=True)
    assert page.dialogs == []


def test_running_rows_update_live_without_a_reload(site, page) -> None:
    from playwright.sync_api import expect

    base, ds, _arns = site
    arn = ds.start("approval", json.dumps({"timeout": 600}), name=f"live-{int(time.time() * 1000)}")
    # Suspended on its callback: the first invocation has ended.
    ds.wait_for(lambda: any(e["EventType"] == "InvocationCompleted" for e in ds.history(arn)), 30)
    callback_id = next(
        e["CallbackStartedDetails"]["CallbackId"] for e in ds.history(arn) if e["EventType"] == "CallbackStarted"
    )
    page.goto(f"{base}/?function=approval")
    row = page.locator(f'tr[data-arn="{arn}"]')
    expect(row.locator(".badge")).to_have_text("RUNNING")
    expect(row.locator("td.invocations")).to_have_text("1")
    chip = page.locator("nav.chips a.chip.s-succeeded b")
    succeeded = int(chip.inner_text()) if chip.count() else 0
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    # The change must come after the page's feed is connected (it starts at the head).
    expect(page.locator("table.executions[data-live=open]")).to_have_count(1)
    ds.callback_success(callback_id, b'"live"')
    expect(row.locator(".badge")).to_have_text("SUCCEEDED", timeout=20_000)
    # The rest of the row and the status counts follow: the callback's invocation is counted.
    expect(row.locator("td.invocations")).to_have_text("2", timeout=20_000)
    expect(row.locator("td.end time")).to_have_count(1)
    expect(row.locator("td.duration")).not_to_contain_text("so far")
    expect(chip).to_have_text(str(succeeded + 1))
    assert navigations == [], "the row must change without a reload"
    shot(page, "list-live-update")


def test_times_show_in_the_browsers_time_zone(site, browser) -> None:
    """Instants are UTC in the HTML (the page without JavaScript) and local in the browser,
    with the UTC value in the tooltip."""
    import datetime as dt

    from playwright.sync_api import expect

    base, _ds, arns = site
    context = browser.new_context(viewport={"width": 1366, "height": 768}, timezone_id="Asia/Kolkata")
    try:
        page = context.new_page()
        page.goto(exec_url(base, arns["retry"]))
        # ICU may name the zone by its older alias.
        expect(page.locator("#tz")).to_have_text(re.compile(r"^Times in Asia/(Kolkata|Calcutta) \(UTC\+05:30\)$"))
        started = page.locator("dl.facts time").first
        utc = dt.datetime.fromisoformat(started.get_attribute("datetime").replace("Z", "+00:00"))
        local = utc + dt.timedelta(hours=5, minutes=30)
        expect(started).to_have_text(local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
        expect(started).to_have_attribute("title", utc.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC")
        # The timeline's axis is in the browser's zone too, and says which.
        expect(page.locator("#timeline .tl-zone")).to_have_text(
            re.compile(r"^time \(Asia/(Kolkata|Calcutta) \(UTC\+05:30\)\)$")
        )
        tick = page.locator("#timeline .tl-axis time.tick").first
        tick_utc = dt.datetime.fromisoformat(tick.get_attribute("datetime").replace("Z", "+00:00"))
        tick_local = tick_utc + dt.timedelta(hours=5, minutes=30)
        expect(tick).to_have_text(re.compile("^" + re.escape(tick_local.strftime("%H:%M:%S"))))
        shot(page, "local-time", full=True)
        page.goto(exec_url(base, arns["retry"]) + "/logs")
        option = page.locator("select[name=invocation] option[data-datetime]").first
        expect(option).to_have_text(re.compile(r"^1 · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$"))
        assert option.inner_text() != "1 · " + option.get_attribute("data-datetime").replace("T", " ")[:-1]
    finally:
        context.close()

    plain = browser.new_context(
        viewport={"width": 1366, "height": 768}, timezone_id="Asia/Kolkata", java_script_enabled=False
    )
    try:
        page = plain.new_page()
        page.goto(exec_url(base, arns["retry"]))
        expect(page.locator("#tz")).to_have_text("Times in UTC")
        expect(page.locator("dl.facts time").first).to_have_text(utc.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
    finally:
        plain.close()


# --- large histories ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[int, tuple[str, int]]]]:
    """A viewer (no engine) over imported histories of 10,000 and 20,000 events, built as
    the viewer benchmark builds them: {size: (arn, number of events)}."""
    from recorder.synthetic import T0, synthetic
    from recorder.transfer import import_histories, parse_history

    db = tmp_path_factory.mktemp("viewer-large") / "durascope.db"
    server, ds = build_server(Settings.from_env(database_url=f"sqlite:///{db}"), port=0, run_engine=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        docs = {n: synthetic("large", n, T0 + n) for n in (10_000, 20_000)}
        import_histories(ds.db, [parse_history(doc, f"synthetic {n}") for n, doc in docs.items()])
        yield (
            f"http://127.0.0.1:{server.server_port}",
            {n: (doc["DurableExecutionArn"], len(doc["Events"])) for n, doc in docs.items()},
        )
    finally:
        server.shutdown()
        server.server_close()
        ds.close()


def test_large_history_page_and_timeline(large_site, page) -> None:
    from playwright.sync_api import expect

    base, large = large_site
    arn, _n = large[10_000]
    page.goto(exec_url(base, arn))
    expect(page.locator("#timeline .tl-row[data-op]").first).to_be_visible()
    # The page says how the rows are summed up and how much of the tree it shows.
    expect(page.locator(".timeline .note")).to_contain_text("summed up per parent")
    expect(page.locator("#timeline .tl-row.summed")).to_contain_text("more operations")
    expect(page.locator("#operations .note")).to_contain_text("Showing the first 500 of")
    shot(page, "large-execution")
    page.locator("section.timeline").screenshot(path=str(SHOTS / "large-timeline.png"))  # the whole chart

    # Hover and click a bar: it still opens its operation in the (capped) tree.
    bar = page.locator("#timeline .tl-row[data-op] a.bar").nth(3)
    bar.scroll_into_view_if_needed()
    box = bar.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.locator(".tl-tooltip")).to_contain_text("step-")
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page).to_have_url(re.compile(r"#op-[0-9a-f]+$"))
    expect(page.locator(f"details#op-{page.url.rsplit('#op-', 1)[1]}")).to_be_in_viewport()
    assert page.dialogs == []


def test_large_event_table_windows_and_deep_links(large_site, page) -> None:
    from playwright.sync_api import expect

    base, large = large_site
    arn, n = large[20_000]
    events = exec_url(base, arn) + "/events"
    page.goto(events)
    expect(page.locator("table.events tbody tr")).to_have_count(200)  # the first window, not 20,000 rows
    expect(page.locator("#event-1")).to_be_visible()
    expect(page.locator("main")).to_contain_text(f"{n:,} matching events; showing #1–#200")
    shot(page, "large-events")

    # A pasted link to an event beyond the first window opens the window that holds it.
    page.goto(events + "#event-15000")
    expect(page).to_have_url(re.compile(r"\?start=15000#event-15000$"))
    row = page.locator("#event-15000")
    expect(row).to_be_in_viewport()
    expect(page.locator("#event-14999")).to_have_count(0)
    assert row.locator("td a").first.get_attribute("href").endswith("?start=15000#event-15000")
    row.locator("summary", has_text="JSON").click()
    expect(row.locator("pre")).to_contain_text('"EventId": 15000')
    shot(page, "large-events-deep-link")

    # Paging on from there, and a link back before the window.
    page.click("text=next events »")
    expect(page.locator("#event-15200")).to_be_attached()
    page.evaluate("location.hash = 'event-3'")
    expect(page).to_have_url(re.compile(r"\?start=3#event-3$"))
    expect(page.locator("#event-3")).to_be_in_viewport()
    assert page.dialogs == []


def test_feed_webhooks_and_404_live_in_the_app(site, page) -> None:
    from playwright.sync_api import expect

    base, ds, _arns = site
    page.goto(base + "/")
    page.locator("header.top nav").get_by_text("Webhooks").click()
    expect(page).to_have_url(base + "/webhooks")
    page.fill("input[name=url]", "http://127.0.0.1:9/hook")
    page.get_by_text("FAILED", exact=True).click()
    page.click("text=Add subscription")
    expect(page.locator("section.created code.secret")).to_contain_text("whsec_")
    expect(page.locator("table.webhooks")).to_contain_text("http://127.0.0.1:9/hook")
    shot(page, "webhooks")
    page.locator("table.webhooks a", has_text="127.0.0.1:9/hook").click()
    expect(page.locator("h1")).to_contain_text("http://127.0.0.1:9/hook")
    shot(page, "webhook")

    page.locator("header.top nav").get_by_text("Status feed").click()
    expect(page.locator("table.feed[data-live=open]")).to_have_count(1)
    name = f"fed-live-{int(time.time() * 1000)}"
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    arn = ds.start("hello", json.dumps({"name": "feed"}), name=name)
    row = page.locator("#feed-rows tr", has_text=name).first
    expect(row).to_be_visible(timeout=20_000)
    expect(row.locator("a")).to_have_attribute("href", re.compile(re.escape(quote(arn, safe="/:")) + "$"))
    assert navigations == [], "the feed must grow without a reload"
    shot(page, "feed")

    response = page.goto(base + "/no/such/page")
    assert response is not None and response.status == 404
    expect(page.locator(".error-page")).to_contain_text("Not found")
    page.click("text=Back to all executions")
    expect(page.locator("table.executions")).to_be_visible()
    assert page.dialogs == []


def test_graph_one_red_box_click_it_see_the_error(site, page) -> None:
    from playwright.sync_api import expect

    base, _ds, arns = site
    page.goto(exec_url(base, arns["exhausted"]))
    graph = page.locator("#graph svg.graph")
    expect(graph).to_be_visible()
    red = graph.locator("a.g-leaf.st-failed")
    expect(red).to_have_count(1)
    expect(red).to_contain_text("call-inventory")
    # The panel already shows it: the error, the traceback its invocation logged.
    panel = page.locator("#node-panel")
    expect(panel).to_contain_text("DownstreamUnavailable")
    expect(panel.locator("pre.traceback").first).to_contain_text("Traceback (most recent call last)")
    page.locator("#graph").screenshot(path=str(SHOTS / "graph-failed.png"))

    page.goto(exec_url(base, arns["map"]))
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    box = page.locator("#graph a.g-leaf.st-failed").first
    box.click()
    expect(page.locator("#node-panel .operation-panel h3")).to_contain_text("process-")
    expect(page.locator("#node-panel")).to_contain_text("ItemRejected")
    expect(box).to_have_class(re.compile(r"\bselected\b"))
    page.locator("#graph a.g-leaf.st-succeeded").first.click()
    expect(page.locator("#node-panel .operation-panel .badge")).to_have_text("SUCCEEDED")
    expect(page.locator("#node-panel")).to_contain_text("processed")  # its decoded result
    assert navigations == [], "a box opens in place"
    page.locator("#graph").screenshot(path=str(SHOTS / "graph-map.png"))
    assert page.dialogs == []


def test_new_executions_appear_on_the_list_without_a_reload(site, page) -> None:
    from playwright.sync_api import expect

    base, ds, _arns = site
    page.goto(f"{base}/?function=order-saga")  # nothing of it yet
    expect(page.locator("table.executions tbody")).to_contain_text("new ones appear here as they start")
    expect(page.locator("table.executions[data-live=open]")).to_have_count(1)
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    name = f"new-{int(time.time() * 1000)}"
    ds.start(
        "order-saga",
        json.dumps({"order_id": "o-9", "sku": "MUG-7", "qty": 1, "amount": 8.0, "fail_at": "ship-order"}),
        name=name,
    )
    row = page.locator("table.executions tr", has_text=name)
    expect(row).to_have_count(1, timeout=20_000)
    expect(row.locator(".badge")).to_have_text("FAILED", timeout=30_000)
    expect(row.locator("td.err")).to_contain_text("SagaRolledBack: order o-9 rolled back")
    expect(page.locator("nav.chips a.chip.s-failed b")).to_have_text("1")
    expect(page.locator("nav.pager")).to_contain_text("1 shown")
    assert navigations == [], "rows must appear without a reload"
    shot(page, "list-new-row")


def test_an_execution_page_follows_the_execution_live(site, page) -> None:
    from playwright.sync_api import expect

    base, ds, _arns = site
    arn = ds.start("approval", json.dumps({"timeout": 600}), name=f"follow-{int(time.time() * 1000)}")
    ds.wait_for(lambda: any(e["EventType"] == "InvocationCompleted" for e in ds.history(arn)), 30)
    page.goto(exec_url(base, arn))
    expect(page.locator(".exec-head .badge").first).to_have_text("RUNNING")
    expect(page.locator(".exec-head .live")).to_be_visible()
    expect(page.locator("#waiting")).to_be_visible()
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    callback_id = next(
        e["CallbackStartedDetails"]["CallbackId"] for e in ds.history(arn) if e["EventType"] == "CallbackStarted"
    )
    ds.callback_success(callback_id, b'"followed"')
    expect(page.locator(".exec-head .badge").first).to_have_text("SUCCEEDED", timeout=30_000)
    expect(page.locator("#waiting")).to_have_count(0)
    expect(page.locator(".io")).to_contain_text("followed")
    expect(page.locator(".exec-head .live")).to_have_count(0)
    assert navigations == []


def test_a_callback_id_copies_with_one_click(site, browser) -> None:
    from playwright.sync_api import expect

    base, ds, _arns = site
    arn = ds.start("approval", json.dumps({"timeout": 600}), name=f"copy-{int(time.time() * 1000)}")
    ds.wait_for(lambda: any(e["EventType"] == "CallbackStarted" for e in ds.history(arn)), 30)
    callback_id = next(
        e["CallbackStartedDetails"]["CallbackId"] for e in ds.history(arn) if e["EventType"] == "CallbackStarted"
    )
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    try:
        page = context.new_page()
        page.goto(exec_url(base, arn))
        code = page.locator("#waiting code.copyable")
        expect(code).to_have_text(callback_id)  # the whole id, not a cut
        code.click()
        expect(code).to_have_attribute("data-copied", "copied")
        assert page.evaluate("navigator.clipboard.readText()") == callback_id
    finally:
        context.close()
        ds.stop(arn)


def test_a_large_pages_operations_load_when_opened(large_site, page) -> None:
    from playwright.sync_api import expect

    base, large = large_site
    arn, _n = large[10_000]
    page.goto(exec_url(base, arn))
    op_id = page.locator("#operations .op-body[data-load]").first.evaluate("el => el.parentElement.id")
    summary = page.locator(f"#{op_id} > summary")
    summary.scroll_into_view_if_needed()
    summary.click()
    body = page.locator(f"#{op_id} > .op-body")
    expect(body).not_to_have_attribute("data-load", re.compile(".*"))
    expect(body).to_contain_text("succeeded")
    expect(body.locator("details.payload summary")).to_contain_text("result")  # its result, one click away
