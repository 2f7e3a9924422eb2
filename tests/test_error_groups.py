"""Error groups (/errors, /api/v1/errors) and full-text search (/search, /api/v1/search)
across executions, on SQLite and PostgreSQL: failures come from real handlers and from
imported histories; the index is a projection that `db rebuild-projections` rebuilds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from recorder.api import Durascope
from recorder.cli import main
from recorder.store.error_index import fingerprint
from recorder.store.projector import rebuild
from recorder.synthetic import T0, synthetic, synthetic_failure
from recorder.transfer import import_histories, parse_history
from tests.conftest import register
from viewer import create_app


@pytest.fixture
def client(ds: Durascope) -> Iterator:
    yield create_app(durascope=ds).test_client()


def _load(ds: Durascope, docs: list[dict]) -> list[str]:
    import_histories(ds.db, [parse_history(d, "test") for d in docs])
    return [d["DurableExecutionArn"] for d in docs]


def test_masking_folds_what_varies_between_runs() -> None:
    a = fingerprint("payment 4411 declined for order 5f1e9a0b at 2026-12-05T17:00:01.123Z")
    b = fingerprint("payment 97 declined for order 0b2c11ff at 2025-01-02T03:04:05Z")
    assert a == b == "payment <n> declined for order <n> at <time>"
    arn = "arn:aws:lambda:us-east-1:123456789012:function:pay:$LATEST/durable-execution/x/y"
    assert fingerprint(f"call {arn} failed") == "call <arn> failed"
    assert fingerprint(f"user {uuid.uuid4()} missing") == "user <uuid> missing"
    assert fingerprint("token 0xDEADbeef rejected after 3.5 s") == "token <hex> rejected after <n> s"
    # A random hex id is sometimes all digits: both forms fold into one group.
    assert fingerprint("rejected by user 39e430") == fingerprint("rejected by user 325631")
    # Words stay words: "facade" and "added" are letters a-f, not hex ids.
    assert fingerprint("facade added") == "facade added"


def _docs() -> list[dict]:
    docs = []
    for i, (amount, order) in enumerate([(4411, "5f1e9a0b"), (97, "0b2c11ff"), (12, "77aa0012")]):
        docs.append(
            synthetic_failure(
                "payments", T0 + i * 60, "CardDeclined", f"payment {amount} declined for order {order}", step="charge"
            )
        )
    docs.append(
        synthetic_failure(
            "payments", T0 + 500, "TimeoutError", f"bank {uuid.uuid4()} did not answer", step="reserve", attempts=1
        )
    )
    docs.append(
        synthetic_failure(
            "shipping", T0 + 900, "CardDeclined", "payment 1 declined for order 9e9e9e9e", step="charge", attempts=1
        )
    )
    docs.append(synthetic("payments", 10, T0 + 1000))  # a success with a retried step ("flaky")
    return docs


def test_groups_count_every_failure_once_and_link_the_newest_executions(ds: Durascope, client) -> None:
    arns = _load(ds, _docs())
    groups = client.get("/api/v1/errors?function=payments").get_json()["groups"]
    by_key = {(g["errorType"], g["message"]): g for g in groups}
    declined = by_key[("CardDeclined", "payment <n> declined for order <n>")]
    # Three executions, each with two failed attempts of "charge" and its own failure.
    assert declined["count"] == 9
    assert declined["function"] == "payments"
    assert sorted((o["kind"], o["name"], o["count"]) for o in declined["operations"]) == [
        ("execution", None, 3),
        ("step", "charge", 6),
    ]
    assert [s["executionArn"] for s in declined["sampleExecutions"]] == [arns[2], arns[1], arns[0]]
    assert declined["firstSeen"] < declined["lastSeen"] and declined["firstSeen"].endswith("Z")
    assert sum(declined["trend"]) == 9
    timeout = by_key[("TimeoutError", "bank <uuid> did not answer")]
    assert timeout["count"] == 2
    flaky = by_key[("ValueError", "flaky")]  # the successful execution's retried steps count too
    assert flaky["count"] >= 1 and flaky["operations"][0]["kind"] == "step"
    assert all(g["function"] == "payments" for g in groups)
    # The most frequent group first.
    assert groups[0]["count"] == max(g["count"] for g in groups)

    everywhere = client.get("/api/v1/errors").get_json()["groups"]
    assert {g["function"] for g in everywhere if g["errorType"] == "CardDeclined"} == {"payments", "shipping"}
    # since/until bound the occurrences: only the first execution's failures are this early.
    early = client.get(f"/api/v1/errors?function=payments&until={int(T0 * 1000) + 30_000}").get_json()["groups"]
    assert [(g["errorType"], g["count"]) for g in early] == [("CardDeclined", 3)]
    late = client.get(f"/api/v1/errors?since={int((T0 + 800) * 1000)}").get_json()["groups"]
    assert {g["function"] for g in late} == {"shipping", "payments"} and all(g["lastSeen"] >= "2026" for g in late)


def test_the_errors_page_shows_groups_escaped_with_links(ds: Durascope, client) -> None:
    doc = synthetic_failure("payments", T0, "<b>Bad</b>", "order <script>alert(1)</script> 12 failed")
    [arn] = _load(ds, [doc])
    page = client.get("/errors").get_data(as_text=True)
    assert 'href="/errors" class="on"' in page and 'href="/static/viewer.css"' in page
    assert "<script>alert" not in page and "&lt;script&gt;alert(&lt;n&gt;)&lt;/script&gt; &lt;n&gt; failed" in page
    assert "&lt;b&gt;Bad&lt;/b&gt;" in page
    assert f'href="/executions/{quote(arn, safe="/:")}"' in page
    assert 'class="trend"' in page
    assert "/api/v1/errors" in page  # the JSON link of the page


@pytest.mark.parametrize(
    "query, message",
    [
        ("since=yesterday", "since: 'yesterday' is not a date"),
        ("since=2026-12-05&until=2026-12-01", "since must not be after until"),
        ("function=" + "x" * 65, "function is longer than 64 characters"),
    ],
)
def test_bad_filters_are_refused_clearly(client, query: str, message: str) -> None:
    resp = client.get(f"/api/v1/errors?{query}")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["type"] == "InvalidParameterValueException"
    assert message in resp.get_json()["error"]["message"]
    page = client.get(f"/errors?{query}")
    assert page.status_code == 400 and message.split(":")[0] in page.get_data(as_text=True)


def test_live_failures_are_grouped_and_searchable(ds: Durascope, client) -> None:
    register(ds, "doomed", "th_basic.always_fails")
    arns = [ds.start("doomed", "{}") for _ in range(2)]
    for arn in arns:
        assert ds.wait(arn, 60).status == "FAILED"
    groups = client.get("/api/v1/errors?function=doomed").get_json()["groups"]
    by_type = {g["errorType"]: g for g in groups}
    [step_group] = [g for g in groups if any(o["name"] == "doomed" for o in g["operations"])]
    assert "never works" in step_group["message"]
    assert sum(g["count"] for g in groups) == 2 * 2 + 2  # two attempts each, then the execution
    assert by_type and {s["executionArn"] for s in step_group["sampleExecutions"]} == set(arns)

    found = client.get("/api/v1/search?q=never+works").get_json()
    assert {h["executionArn"] for h in found["errors"]} == set(arns)
    assert any(h["operationName"] == "doomed" and h["operationId"] for h in found["errors"])
    # Recorded live (on PostgreSQL before their events' positions were drawn), the
    # occurrences point at their events exactly as a rebuild from the log does.
    live = _occurrences(ds)
    with ds.db.write() as conn:
        rebuild(conn)
    assert _occurrences(ds) == live
    with ds.db.read() as conn:
        types = dict(conn.execute(text("SELECT position, event_type FROM events")).all())
    assert {types[row[0]] for row in live} == {"StepFailed", "ExecutionFailed"}


def test_failed_and_timed_out_callbacks_are_grouped(ds: Durascope, client) -> None:
    register(ds, "approval", "th_basic.approval")
    arns = [ds.start("approval", '{"timeout": 300}') for _ in range(2)]
    late = ds.start("approval", '{"timeout": 1}')
    for arn in arns:
        callback_id = ds.wait_for(
            lambda a=arn: next(
                (
                    e["CallbackStartedDetails"]["CallbackId"]
                    for e in ds.history(a)
                    if e["EventType"] == "CallbackStarted"
                ),
                None,
            ),
            30,
            "no callback",
        )
        ds.callback_failure(callback_id, {"ErrorType": "Rejected", "ErrorMessage": f"rejected by user {arn[-6:]}"})
    for arn in (*arns, late):
        ds.wait(arn, 60)
    groups = client.get("/api/v1/errors?function=approval").get_json()["groups"]
    callback_groups = {g["errorType"]: g for g in groups if any(o["kind"] == "callback" for o in g["operations"])}
    rejected = callback_groups["Rejected"]
    assert rejected["count"] >= 2 and rejected["message"].startswith("rejected by user")
    assert {s["executionArn"] for s in rejected["sampleExecutions"]} == set(arns)
    timed_out = callback_groups["Callback.Timeout"]
    assert timed_out["message"] == "Callback timed out" and timed_out["count"] == 1
    assert [s["executionArn"] for s in timed_out["sampleExecutions"]] == [late]


def test_search_finds_error_text_and_log_lines(ds: Durascope, client) -> None:
    register(ds, "logs", "th_basic.logs_things")
    arn = ds.start("logs", "{}")
    ds.wait(arn, 60)
    [failed] = _load(ds, [synthetic_failure("payments", T0, "CardDeclined", "payment 12 declined by issuer")])
    # Stemmed: "decline" finds "declined"; every word must match.
    hits = client.get("/api/v1/search?q=decline").get_json()
    assert [h["executionArn"] for h in hits["errors"]] == [failed, failed, failed]
    assert client.get("/api/v1/search?q=declined+nowhere").get_json()["errors"] == []
    # The stack trace is indexed too.
    assert client.get("/api/v1/search?q=handler.py").get_json()["errors"]
    logs = client.get("/api/v1/search?q=markup").get_json()["logs"]
    assert [h["executionArn"] for h in logs] == [arn] and "<b>markup</b>" in logs[0]["message"]
    assert logs[0]["operationId"]  # written inside the step
    # Operators and quotes are words to look for, never a syntax error.
    for q in ['"', "a OR", "NEAR(x", "*", "-", "printed AND", "'; drop table events; --"]:
        assert client.get("/api/v1/search", query_string={"q": q}).status_code == 200, q
    assert client.get("/api/v1/search?q=printed+line").get_json()["logs"][0]["executionArn"] == arn

    page = client.get("/search?q=markup").get_data(as_text=True)
    assert 'href="/search" class="on"' in page
    assert "&lt;b&gt;markup&lt;/b&gt;" in page and "<b>markup</b>" not in page
    assert f"/executions/{quote(arn, safe='/:')}/logs#log-{logs[0]['lineId']}" in page
    err_page = client.get("/search?q=issuer").get_data(as_text=True)
    assert f"/executions/{quote(failed, safe='/:')}/operations/" in err_page
    too_long = client.get("/api/v1/search?q=" + "x" * 201)
    assert too_long.status_code == 400 and "q is longer" in too_long.get_json()["error"]["message"]


def _occurrences(ds: Durascope) -> list[tuple]:
    with ds.db.read() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT * FROM error_occurrences ORDER BY position"))]


def test_rebuild_projections_rebuilds_the_error_index(ds: Durascope, client) -> None:
    _load(ds, _docs())
    before = _occurrences(ds)
    assert len(before) > 10
    with ds.db.write() as conn:
        conn.execute(text("DELETE FROM error_occurrences"))
    assert client.get("/api/v1/errors").get_json()["groups"] == []
    assert client.get("/api/v1/search?q=declined").get_json()["errors"] == []
    result = CliRunner().invoke(main, ["--database-url", ds.db.url, "db", "rebuild-projections"])
    assert result.exit_code == 0, result.output
    assert _occurrences(ds) == before
    assert len(client.get("/api/v1/search?q=declined").get_json()["errors"]) > 0


def test_a_purged_execution_leaves_no_error_behind(ds: Durascope, client) -> None:
    [arn] = _load(ds, [synthetic_failure("payments", T0, "Gone", "vanishing 12")])
    assert client.get("/api/v1/search?q=vanishing").get_json()["errors"]
    from recorder.arns import ExecutionArn
    from recorder.store.log import purge_execution

    with ds.db.write() as conn:
        purge_execution(conn, ExecutionArn.parse(arn).execution_id)
    assert client.get("/api/v1/errors").get_json()["groups"] == []
    assert client.get("/api/v1/search?q=vanishing").get_json()["errors"] == []
    assert _occurrences(ds) == []


def test_the_migration_fills_the_index_from_an_existing_log(ds: Durascope, client) -> None:
    """A store that had failures and log lines before revision 0006: upgrading indexes them."""
    from alembic import command

    register(ds, "logs", "th_basic.logs_things")
    arn = ds.start("logs", "{}")
    ds.wait(arn, 60)
    _load(ds, _docs())
    before = _occurrences(ds)
    command.downgrade(ds.db.alembic_config(), "0005")
    with ds.db.read() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM log_lines")).scalar_one() > 0  # the lines stay
    command.upgrade(ds.db.alembic_config(), "head")
    assert _occurrences(ds) == before
    assert client.get("/api/v1/search?q=markup").get_json()["logs"][0]["executionArn"] == arn
    assert client.get("/api/v1/search?q=declined").get_json()["errors"]
