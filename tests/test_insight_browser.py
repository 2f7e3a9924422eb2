"""The pages across executions in a real browser (headless Chromium): error groups and
search. Screenshots land in test-artifacts/screenshots/insight-*.png."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest

from recorder.api import Durascope
from recorder.config import Settings
from recorder.synthetic import T0, synthetic_failure
from recorder.transfer import import_histories, parse_history
from tests.conftest import register
from tests.test_viewer_browser import ARGS, CHROMIUM, pytestmark, shot  # noqa: F401  (the skip mark)
from viewer.server import build_server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Durascope, dict[str, str]]]:
    db = tmp_path_factory.mktemp("insight") / "durascope.db"
    server, ds = build_server(Settings.from_env(database_url=f"sqlite:///{db}"), port=0, invoker="in-process")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        register(ds, "doomed", "th_basic.always_fails")
        register(ds, "logs", "th_basic.logs_things")
        register(ds, "checkout", "th_insight.checkout")
        register(ds, "approval", "th_basic.approval")
        register(ds, "waits", "th_basic.waits")
        register(ds, "chatty", "th_insight.chatty")
        arns = {"doomed": ds.start("doomed", "{}", name="doomed-1"), "logs": ds.start("logs", "{}", name="logs-1"),
                "good": ds.start("checkout", '{"amount": 5}', name="checkout-good"),
                "bad": ds.start("checkout", '{"amount": 5, "fail": true}', name="checkout-bad"),
                "approval": ds.start("approval", '{"timeout": 600}', name="approval-1"),
                "sleeper": ds.start("waits", '{"seconds": 900}', name="sleeper-1"),
                "chatty": ds.start("chatty", "{}", name="chatty-1")}
        docs = [synthetic_failure("payments", T0 + i * 3600, "CardDeclined",
                                  f"payment {100 + i} declined for order {i:04x}ab", step="charge")
                for i in range(12)]
        docs.append(synthetic_failure("payments", T0 + 50_000, "<i>Odd</i>", "bad <b>input</b> 7", step="parse"))
        import_histories(ds.db, [parse_history(d, "test") for d in docs])
        arns["newest-declined"] = docs[11]["DurableExecutionArn"]
        for key in ("doomed", "logs", "good", "bad", "chatty"):
            ds.wait(arns[key], 60)
        base = f"http://127.0.0.1:{server.server_port}"
        ds.wait_for(lambda: len(_board(base)) == 2, 60, "not both suspended")
        yield base, ds, arns
    finally:
        server.shutdown()
        server.server_close()
        ds.close()


def _board(base: str) -> list:
    import json
    import urllib.request

    with urllib.request.urlopen(base + "/api/v1/waiting") as resp:
        return [e for e in json.load(resp)["executions"] if e["waitingOn"]]


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
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def test_error_groups_page_filters_and_opens_the_newest_sample(site, page) -> None:
    from playwright.sync_api import expect

    base, _ds, arns = site
    page.goto(base + "/")
    page.click("header nav >> text=Errors")
    expect(page).to_have_url(base + "/errors")
    groups = page.locator("table.groups tbody tr.group")
    expect(groups.first).to_contain_text("CardDeclined")
    expect(groups.first).to_contain_text("payment <n> declined for order <hex>")  # escaped, shown as text
    expect(groups.first.locator("td.num")).to_have_text("36")  # 12 executions × (2 attempts + 1)
    expect(page.locator("table.groups")).to_contain_text("<i>Odd</i>")
    expect(page.locator("table.groups")).to_contain_text("never works")
    shot(page, "insight-errors", full=True)

    page.fill("input[name=function]", "doomed")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"function=doomed"))
    expect(groups).not_to_contain_text(["CardDeclined"])
    page.goto(base + "/errors?function=payments")
    groups.first.locator("ul.samples a").first.click()
    expect(page.locator(".exec-head .arn")).to_contain_text(arns["newest-declined"])


def test_search_finds_log_lines_and_errors_and_links_to_them(site, page) -> None:
    from playwright.sync_api import expect

    base, _ds, arns = site
    page.goto(base + "/search")
    page.fill("input[name=q]", "markup")
    page.click("form.filters button[type=submit]")
    expect(page.locator(".log-hit")).to_have_count(1)
    expect(page.locator(".log-hit pre")).to_contain_text("step logger line <b>markup</b>")
    shot(page, "insight-search")
    page.click(".log-hit >> text=log line")
    expect(page).to_have_url(re.compile(r"/logs#log-\d+$"))
    expect(page.locator("table.logs")).to_contain_text("step logger line")

    page.goto(base + "/search?q=declined+order")
    expect(page.locator(".error-hit").first).to_contain_text("CardDeclined")
    page.locator(".error-hit >> text=step charge").first.click()
    expect(page).to_have_url(re.compile(r"/operations/"))


def test_compare_a_failed_execution_with_the_last_success(site, page) -> None:
    from playwright.sync_api import expect

    base, _ds, arns = site
    page.goto(base + "/")
    page.click("text=checkout-bad")
    page.click("text=Compare with the last success")
    expect(page).to_have_url(re.compile(r"/diff\?a=.*&b="))
    expect(page.locator("#divergence")).to_contain_text("First divergence at charge")
    expect(page.locator("#divergence")).to_contain_text("outcome SUCCEEDED in A, FAILED in B")
    expect(page.locator("table.diff tr.first")).to_contain_text("card declined for 10")
    shot(page, "insight-diff", full=True)
    page.click("#divergence a")
    expect(page).to_have_url(re.compile(r"#row-"))

    # Any two rows of the list.
    page.goto(base + "/")
    page.check(f"input[name=arn][value='{arns['good']}']")
    page.check(f"input[name=arn][value='{arns['doomed']}']")
    page.click("button.compare-selected")
    expect(page).to_have_url(re.compile(r"/diff\?arn="))
    expect(page.locator("#divergence")).to_contain_text("First divergence")


def test_waiting_board_highlights_and_acts_after_confirmation(site, page) -> None:
    from playwright.sync_api import expect

    base, ds, arns = site
    page.goto(base + "/")
    page.click("header nav >> text=Waiting")
    rows = page.locator("table.waiting tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("table.waiting")).to_contain_text("approval-1")
    expect(page.locator("table.waiting")).to_contain_text("wait 'pause'")
    shot(page, "insight-waiting", full=True)

    page.select_option("select[name=kind]", "callback")
    page.click("form.filters button[type=submit]")
    expect(rows).to_have_count(1)
    page.goto(base + "/waiting")

    # Dismissing the confirmation does nothing; accepting it stops the selected execution.
    answers = iter([False, True])
    page.on("dialog", lambda d: d.accept() if next(answers) else d.dismiss())
    page.check(f"input[name=arn][value='{arns['sleeper']}']")
    page.click("button[value=stop]")
    assert ds.describe(arns["sleeper"]).status == "RUNNING"
    page.check(f"input[name=arn][value='{arns['sleeper']}']")
    page.click("button[value=stop]")
    expect(page.locator(".outcome")).to_contain_text("Stop requested for 1 execution")
    ds.wait_for(lambda: ds.describe(arns["sleeper"]).status == "STOPPED", 30, "not stopped")
    shot(page, "insight-waiting-after")


def test_logs_hide_replays_group_by_operation_and_attempts_jump_to_their_lines(site, page) -> None:
    from playwright.sync_api import expect

    base, _ds, _arns = site
    page.goto(base + "/")
    page.click("text=chatty-1")
    page.click("nav.tabs >> text=Logs")
    rows = page.locator("table.logs tbody tr")
    expect(page.locator(".replay-note")).to_contain_text("3 lines written while the SDK replayed")
    expect(rows.filter(has_text="starting")).to_have_count(1)
    shot(page, "insight-logs")

    page.check("input[name=replay]")
    page.click("form.filters button[type=submit]")
    expect(rows.filter(has_text="starting")).to_have_count(3)
    expect(page.locator("tr.replayed .badge.replay")).to_have_count(3)
    page.check("input[name=group]")
    page.click("form.filters button[type=submit]")
    expect(page.locator("h2.log-group")).to_have_count(3)
    shot(page, "insight-logs-grouped", full=True)

    # From the execution page, the second attempt of "second" jumps to exactly its lines.
    page.click("nav.tabs >> text=Overview")
    link = page.locator("a.attempt-logs[href*='attempt=2']").first
    assert link.is_visible(), "the attempt's link is hidden"
    link.click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("inside second, attempt 2")
