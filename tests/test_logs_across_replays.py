"""Log lines tied to operations with replays marked, on SQLite and PostgreSQL: the capture
tags each line with the operation (and attempt) it was written in and whether the SDK was
replaying; the logs page and its twin hide replayed repeats by default; each attempt on
the execution page links to exactly its own lines; the CLI filters the same way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from recorder.api import Durascope
from tests.conftest import register
from tests.test_cli import run
from viewer import create_app


@pytest.fixture
def client(ds: Durascope) -> Iterator:
    yield create_app(durascope=ds).test_client()


def _chatty(d: Durascope) -> str:
    register(d, "chatty", "th_insight.chatty")
    arn = d.start("chatty", "{}", name="chatty-1")
    assert d.wait(arn, 60).status == "SUCCEEDED"
    return arn


def _ops(d: Durascope, arn: str) -> dict[str, str]:
    return {e["Name"]: e["Id"] for e in d.history(arn) if e.get("Name") and e["EventType"].startswith("Step")}


def _lines(client, arn: str, **args: str) -> list[dict]:
    resp = client.get(f"/api/v1/executions/{quote(arn, safe='/:')}/logs", query_string=args)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["rows"]


def _stdout(rows: list[dict]) -> list[tuple]:
    return [(r["message"], r["operationId"], r["attempt"], r["replay"]) for r in rows if r["level"] == "STDOUT"]


def _check_tags(d: Durascope, client, arn: str) -> None:
    ops = _ops(d, arn)
    first, second = ops["first"], ops["second"]
    # Three invocations: the first runs to the wait; the second replays to it and runs
    # "second" (which fails once); the third replays everything before "second"'s retry.
    assert _stdout(_lines(client, arn, replay="show")) == [
        ("starting", None, None, False),
        ("inside first, attempt 1", first, 1, False),
        ("starting", None, None, True),
        ("after the nap", None, None, False),
        ("inside second, attempt 1", second, 1, False),
        ("starting", None, None, True),
        ("after the nap", None, None, True),
        ("inside second, attempt 2", second, 2, False),
    ]
    # By default the repeats are left out: every line once, where it made progress.
    assert [m for m, *_ in _stdout(_lines(client, arn))] == [
        "starting", "inside first, attempt 1", "after the nap", "inside second, attempt 1",
        "inside second, attempt 2"]


def test_each_line_carries_its_operation_and_replay_state(ds: Durascope, client) -> None:
    arn = _chatty(ds)
    _check_tags(ds, client, arn)
    first_attempt = _lines(client, arn, op=_ops(ds, arn)["second"], attempt="1")
    texts = [r["message"].split("\n", 1)[0] for r in first_attempt]
    # Its own print and the SDK's line about its failure (with the traceback), nothing else.
    assert texts[0] == "inside second, attempt 1" and texts[1].startswith("❌ failed step for id")
    assert len(texts) == 2 and "ValueError: not yet" in first_attempt[1]["message"]
    assert [r["message"] for r in _lines(client, arn, op="second", attempt="2")] == ["inside second, attempt 2"]
    # By name, every attempt.
    assert [r["message"] for r in _lines(client, arn, op="first")] == ["inside first, attempt 1"]
    bad = client.get(f"/api/v1/executions/{quote(arn, safe='/:')}/logs?attempt=1")
    assert bad.status_code == 400 and "attempt needs op" in bad.get_json()["error"]["message"]


def test_tags_travel_from_child_interpreters(database_url: str) -> None:
    d = Durascope.open(database_url, invoker_processes=1)
    try:
        arn = _chatty(d)
        _check_tags(d, create_app(durascope=d).test_client(), arn)
    finally:
        d.close()


def test_the_logs_page_hides_replays_groups_and_links_attempts(ds: Durascope, client) -> None:
    arn = _chatty(ds)
    base = f"/executions/{quote(arn, safe='/:')}"
    page = client.get(f"{base}/logs").get_data(as_text=True)
    assert "3 lines written while the SDK replayed earlier invocations are hidden" in page
    assert page.count("<pre class=\"msg\">starting</pre>") == 1 and 'class="badge replay"' not in page
    shown = client.get(f"{base}/logs?replay=show").get_data(as_text=True)
    assert shown.count("<pre class=\"msg\">starting</pre>") == 3 and shown.count('class="badge replay"') == 3
    grouped = client.get(f"{base}/logs?group=operation").get_data(as_text=True)
    # The handler's own code, then each step where its first line is.
    assert grouped.count('<h2 class="log-group"') == 3 and 'id="group-handler"' in grouped
    assert grouped.index(">first</a>") < grouped.index(">second</a>")

    # Every attempt of every step on the execution page links to exactly its own lines.
    execution_page = client.get(base).get_data(as_text=True)
    second = _ops(ds, arn)["second"]
    for n in (1, 2):
        href = f"logs?op={second}&amp;attempt={n}"
        assert href in execution_page
        own = client.get(f"{base}/logs?op={second}&attempt={n}").get_data(as_text=True)
        assert f"inside second, attempt {n}" in own and f"inside second, attempt {3 - n}" not in own
    assert f"logs?op={_ops(ds, arn)['first']}&amp;attempt=1" in execution_page


def test_cli_logs_by_operation_without_replays(database_url: str) -> None:
    d = Durascope.open(database_url)
    try:
        arn = _chatty(d)
    finally:
        d.close()
    every = run(database_url, "logs", arn).stdout
    assert every.count("starting") == 3 and every.count(" replay ") == 3
    fresh = run(database_url, "logs", arn, "--no-replay").stdout
    assert fresh.count("starting") == 1 and " replay " not in fresh
    second = run(database_url, "logs", arn, "--operation", "second", "--no-replay", "--json").stdout.splitlines()
    rows = [json.loads(x) for x in second]
    assert [(r["Message"], r["Attempt"], r["Replay"]) for r in rows] == [
        ("inside second, attempt 1", 1, False), ("inside second, attempt 2", 2, False)]
    by_id = run(database_url, "logs", arn, "--operation", rows[0]["OperationId"]).stdout
    assert "second#1 inside second, attempt 1" in by_id and "first" not in by_id
    missing = run(database_url, "logs", arn, "--operation", "nope", ok=False)
    assert missing.returncode != 0 and "no operation 'nope'" in missing.stderr
