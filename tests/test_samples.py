"""The seed workflows in ``samples/`` run on the engine and leave the history they promise.

Each sample is registered from ``samples.catalog`` (the same registry the demo uses) and run on
SQLite and PostgreSQL. The assertions are about the facts a user would look for in the
viewer: retries recorded on the failing step, compensations in reverse order, parallel
branches as ParallelBranch contexts, each failure ending with its status and error type.
"""

from __future__ import annotations

import ast
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recorder.api import Durascope
from recorder.queries import execution_logs
from samples import document_etl, failures, loan, orders, saga
from samples.catalog import CATALOG, by_name

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "samples"
CALLBACK_ENDS = {"CallbackSucceeded", "CallbackFailed", "CallbackTimedOut"}


@pytest.fixture
def sds(ds: Durascope) -> Iterator[Durascope]:
    """The engine with every catalog function registered."""
    for sample in CATALOG:
        ds.register_function(sample.name, sample.handler, execution_timeout=sample.execution_timeout)
    yield ds


def start(ds: Durascope, function: str, payload: dict[str, Any]) -> str:
    return ds.start(function, json.dumps(payload))


def types(history: list[dict[str, Any]]) -> list[str]:
    return [e["EventType"] for e in history]


def named(history: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in history if e.get("Name") == name]


def details(event: dict[str, Any]) -> dict[str, Any]:
    return event[f"{event['EventType']}Details"]


def open_callbacks(ds: Durascope, arn: str, count: int = 1) -> list[str]:
    """Wait until ``count`` callbacks have started; return the ids of those still open, oldest first."""

    def ready() -> list[str] | None:
        h = ds.history(arn)
        started = [e for e in h if e["EventType"] == "CallbackStarted"]
        if len(started) < count:
            return None
        ended = {e["Id"] for e in h if e["EventType"] in CALLBACK_ENDS}
        return [details(e)["CallbackId"] for e in started if e["Id"] not in ended] or None

    return ds.wait_for(ready, 20, f"{arn} did not start {count} callback(s)")


def step_result(event: dict[str, Any]) -> Any:
    """A StepSucceeded result, decoded from the SDK's typed JSON envelope ({"t": ..., "v": ...})."""

    def plain(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"t", "v"}:
            value = node["v"]
            if node["t"] == "m":
                return {k: plain(v) for k, v in value.items()}
            if node["t"] == "l":
                return [plain(v) for v in value]
            return value
        return node

    return plain(json.loads(details(event)["Result"]["Payload"]))


# --- static checks ---------------------------------------------------------------------------


def test_catalog_names_are_unique_and_handlers_resolve() -> None:
    import importlib

    names = [s.name for s in CATALOG]
    assert len(names) == len(set(names))
    for sample in CATALOG:
        module, _, attr = sample.handler.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), sample.handler
        assert sample.description and 1 <= sample.execution_timeout <= 86400
    assert by_name("execution-timeout").execution_timeout <= 5
    with pytest.raises(KeyError, match="known"):
        by_name("nope")


@pytest.mark.parametrize("path", sorted(SAMPLES_DIR.glob("*.py")), ids=lambda p: p.name)
def test_samples_import_only_the_sdk_and_the_standard_library(path: Path) -> None:
    allowed = set(sys.stdlib_module_names) | {"aws_durable_execution_sdk_python", "samples", "__future__"}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            roots = [(node.module or "").split(".")[0]] if node.level == 0 else ["samples"]
        else:
            continue
        assert set(roots) <= allowed, f"{path.name} imports {roots}"


@pytest.mark.parametrize("module", [orders, saga, document_etl, loan, failures], ids=lambda m: m.__name__)
def test_sample_inputs_are_seeded_and_json(module: Any) -> None:
    first = [module.sample_input(random.Random(s)) for s in range(5)]
    assert first == [module.sample_input(random.Random(s)) for s in range(5)]
    json.dumps(first)


def test_bulk_documents_have_distinct_ids() -> None:
    docs = document_etl.bulk_inputs(25, random.Random(1), approval_timeout_seconds=30)
    assert len({d["document_id"] for d in docs}) == 25
    assert all(d["approval_timeout_seconds"] == 30 and d["records"] > 0 for d in docs)


# --- orders ---------------------------------------------------------------------------------


ORDER = {
    "order_id": "ord-1",
    "customer": "ada",
    "items": [{"sku": "BOOK-1", "qty": 2, "price": 12.5}],
    "confirmation_seconds": 1,
}


def test_order_retries_the_flaky_payment_then_confirms(sds: Durascope) -> None:
    ok = start(sds, "orders", {**ORDER, "fail_first_attempts": 2})
    invalid = start(sds, "orders", {**ORDER, "order_id": "ord-2", "items": [{"sku": "X", "qty": 0, "price": 1}]})
    exhausted = start(sds, "orders", {**ORDER, "order_id": "ord-3", "fail_first_attempts": 9})

    done = sds.wait(ok, 30)
    assert done.status == "SUCCEEDED"
    assert json.loads(done.result or "null") == {
        "order_id": "ord-1",
        "status": "CONFIRMED",
        "payment_id": "pay-ord-1",
        "total": 25.0,
    }
    h = sds.history(ok)
    payment = [e["EventType"] for e in named(h, "process-payment")]
    assert payment == ["StepStarted", "StepFailed", "StepStarted", "StepFailed", "StepStarted", "StepSucceeded"]
    failed = [details(e) for e in named(h, "process-payment") if e["EventType"] == "StepFailed"]
    assert [f["RetryDetails"] for f in failed] == [
        {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 1},
        {"CurrentAttempt": 2, "NextAttemptDelaySeconds": 1},
    ]
    assert failed[0]["Error"]["Payload"]["ErrorType"] == "samples.orders.PaymentGatewayError"
    succeeded = next(e for e in named(h, "process-payment") if e["EventType"] == "StepSucceeded")
    assert details(succeeded)["RetryDetails"] == {"CurrentAttempt": 3}
    assert step_result(succeeded)["attempts"] == 3
    wait = next(e for e in h if e["EventType"] == "WaitStarted")
    assert wait["Name"] == "confirmation-period" and details(wait)["Duration"] == 1
    assert [e["Name"] for e in h if e["EventType"] == "StepSucceeded"] == [
        "validate-order",
        "process-payment",
        "confirm-order",
    ]

    # An invalid order fails at validation, once: retrying would not help.
    bad = sds.wait(invalid, 30)
    assert bad.status == "FAILED" and "quantity" in (bad.error or {})["ErrorMessage"]
    hb = sds.history(invalid)
    assert types(named(hb, "validate-order")) == ["StepStarted", "StepFailed"]
    assert details(named(hb, "validate-order")[1])["Error"]["Payload"]["ErrorType"] == "samples.orders.InvalidOrder"
    assert not named(hb, "process-payment")

    # A gateway that stays down exhausts the four attempts.
    gone = sds.wait(exhausted, 30)
    assert gone.status == "FAILED"
    attempts = [
        details(e)["RetryDetails"]["CurrentAttempt"]
        for e in named(sds.history(exhausted), "process-payment")
        if e["EventType"] == "StepFailed"
    ]
    assert attempts == [1, 2, 3, 4]


def test_order_with_approval_hands_out_the_callback_id(sds: Durascope) -> None:
    approved = start(sds, "orders-approval", {**ORDER, "order_id": "ord-10"})
    denied = start(sds, "orders-approval", {**ORDER, "order_id": "ord-11"})
    said_no = start(sds, "orders-approval", {**ORDER, "order_id": "ord-12"})
    (cid,) = open_callbacks(sds, approved)

    # The submitter step returns the id (visible in the history) and logs it.
    submitter = sds.wait_for(
        lambda: next(
            (
                e
                for e in sds.history(approved)
                if e["EventType"] == "StepSucceeded" and e["Name"] == "manager-approval submitter"
            ),
            None,
        ),
        20,
        "the submitter step did not succeed",
    )
    h = sds.history(approved)
    assert step_result(submitter) == {"callback_id": cid, "order_id": "ord-10", "approver": "manager"}
    sds.wait_for(
        lambda: any(cid in line.message for line in execution_logs(sds.db, approved)), 10, "callback id not logged"
    )
    assert next(e for e in h if e["Name"] == "manager-approval")["SubType"] == "WaitForCallback"

    sds.callback_success(cid, json.dumps({"approved": True, "approver": "maria"}))
    done = sds.wait(approved, 30)
    assert done.status == "SUCCEEDED"
    assert json.loads(done.result or "{}")["approved_by"] == "maria"
    assert [e["Name"] for e in sds.history(approved) if e["EventType"] == "StepSucceeded"][-2:] == [
        "process-payment",
        "confirm-order",
    ]

    (cid2,) = open_callbacks(sds, denied)
    sds.callback_failure(cid2, {"ErrorType": "ApprovalDenied", "ErrorMessage": "over the limit"})
    failed = sds.wait(denied, 30)
    assert failed.status == "FAILED" and failed.error
    assert failed.error["ErrorType"].endswith("CallbackExternalError")
    assert not named(sds.history(denied), "process-payment")

    (cid3,) = open_callbacks(sds, said_no)
    sds.callback_success(cid3, json.dumps({"approved": False, "approver": "omar", "reason": "duplicate"}))
    rejected = sds.wait(said_no, 30)
    assert rejected.status == "FAILED" and rejected.error
    assert rejected.error["ErrorType"] == "samples.orders.OrderRejected"
    assert "duplicate" in rejected.error["ErrorMessage"]


# --- saga -----------------------------------------------------------------------------------


def test_saga_compensates_in_reverse_order(sds: Durascope) -> None:
    base = {"order_id": "ord-7", "sku": "LAMP-3", "qty": 1, "amount": 39.9}
    at_ship = start(sds, "order-saga", {**base, "fail_at": "ship-order"})
    at_charge = start(sds, "order-saga", {**base, "order_id": "ord-8", "fail_at": "charge-payment"})
    happy = start(sds, "order-saga", {**base, "order_id": "ord-9", "fail_at": None})

    done = sds.wait(at_ship, 30)
    assert done.status == "FAILED" and done.error
    assert done.error["ErrorType"] == "samples.saga.SagaRolledBack"
    assert "compensated: refund-payment, release-inventory" in done.error["ErrorMessage"]
    h = sds.history(at_ship)
    assert [e["Name"] for e in h if e["EventType"] == "StepSucceeded"] == [
        "reserve-inventory",
        "charge-payment",
        "refund-payment",
        "release-inventory",
    ]
    assert types(named(h, "ship-order")) == ["StepStarted", "StepFailed", "StepStarted", "StepFailed"]
    # Every compensation starts after the failure it compensates for is final.
    last_failure = max(e["EventId"] for e in named(h, "ship-order"))
    assert min(e["EventId"] for e in named(h, "refund-payment")) > last_failure
    refund = next(e for e in named(h, "refund-payment") if e["EventType"] == "StepSucceeded")
    assert step_result(refund) == {"refunded": "ch-ord-7", "amount": 39.9}
    assert types(h)[-1] == "ExecutionFailed"

    early = sds.wait(at_charge, 30)
    assert early.status == "FAILED" and "compensated: release-inventory" in (early.error or {})["ErrorMessage"]
    assert [e["Name"] for e in sds.history(at_charge) if e["EventType"] == "StepSucceeded"] == [
        "reserve-inventory",
        "release-inventory",
    ]

    ok = sds.wait(happy, 30)
    assert ok.status == "SUCCEEDED"
    assert json.loads(ok.result or "{}")["tracking"] == "TRK-ord-9"
    assert not named(sds.history(happy), "refund-payment")


# --- document ETL ---------------------------------------------------------------------------


def test_document_etl_approve_reject_and_timeout(sds: Durascope) -> None:
    approve, reject, late = document_etl.bulk_inputs(
        3, random.Random(4), approval_timeout_seconds=60, heartbeat_timeout_seconds=0
    )
    late["approval_timeout_seconds"] = 1
    arns = [start(sds, "document-etl", doc) for doc in (approve, reject, late)]

    (cid,) = open_callbacks(sds, arns[0])
    sds.callback_heartbeat(cid)
    sds.callback_success(cid, json.dumps({"approved": True, "reviewer": "lee"}))
    (cid2,) = open_callbacks(sds, arns[1])
    sds.callback_success(cid2, json.dumps({"approved": False, "reason": "totals do not match"}))

    loaded = sds.wait(arns[0], 30)
    assert loaded.status == "SUCCEEDED"
    result = json.loads(loaded.result or "{}")
    rows = approve["records"] - approve["records"] // 20
    assert result == {
        "document_id": approve["document_id"],
        "status": "LOADED",
        "reviewer": "lee",
        "table": f"warehouse.{approve['kind']}s",
        "rows_loaded": rows,
    }
    h = sds.history(arns[0])
    assert [e["Name"] for e in h if e["EventType"] == "StepSucceeded"] == [
        "extract",
        "transform",
        "approval submitter",
        "load",
    ]
    assert details(next(e for e in h if e["EventType"] == "CallbackStarted"))["Timeout"] == 60

    rejected = sds.wait(arns[1], 30)
    assert rejected.status == "SUCCEEDED"
    assert json.loads(rejected.result or "{}")["status"] == "REJECTED"
    assert not named(sds.history(arns[1]), "load")

    timed_out = sds.wait(arns[2], 30)
    assert timed_out.status == "FAILED"
    event = next(e for e in sds.history(arns[2]) if e["EventType"] == "CallbackTimedOut")
    assert details(event)["Error"]["Payload"]["ErrorType"] == "Callback.Timeout"


# --- loan -----------------------------------------------------------------------------------


APPLICATION = {
    "application_id": "app-1",
    "applicant": "grace",
    "amount": 15000,
    "term_months": 36,
    "annual_income": 90000,
    "credit_score": 760,
    "fraud_flag": False,
    "approval_timeout_seconds": 60,
    "offer_valid_seconds": 60,
}


def test_loan_runs_checks_in_parallel_and_waits_for_two_decisions(sds: Durascope) -> None:
    funded = start(sds, "loan-origination", APPLICATION)
    fraud = start(sds, "loan-origination", {**APPLICATION, "application_id": "app-2", "fraud_flag": True})
    declined = start(sds, "loan-origination", {**APPLICATION, "application_id": "app-3"})

    (underwriter,) = open_callbacks(sds, funded, 1)
    sds.callback_success(underwriter, json.dumps({"approved": True, "underwriter": "omar"}))
    (customer,) = open_callbacks(sds, funded, 2)
    assert customer != underwriter
    sds.callback_success(customer, json.dumps({"accepted": True}))
    (u3,) = open_callbacks(sds, declined, 1)
    sds.callback_success(u3, json.dumps({"approved": False, "reason": "thin file"}))

    done = sds.wait(funded, 30)
    assert done.status == "SUCCEEDED"
    result = json.loads(done.result or "{}")
    assert result["status"] == "FUNDED" and result["underwriter"] == "omar" and result["amount"] == 15000
    h = sds.history(funded)
    parallel = next(e for e in h if e["EventType"] == "ContextStarted" and e["Name"] == "background-checks")
    assert parallel["SubType"] == "Parallel"
    branches = [e for e in h if e["EventType"] == "ContextStarted" and e.get("SubType") == "ParallelBranch"]
    assert sorted(e["Name"] for e in branches) == ["credit-bureau", "fraud-check", "income-verification"]
    assert {e["ParentId"] for e in branches} == {parallel["Id"]}
    branch_ids = {e["Id"] for e in branches}
    checks = [e for e in h if e["EventType"] == "StepSucceeded" and e.get("ParentId") in branch_ids]
    assert sorted(e["Name"] for e in checks) == ["query-credit-bureau", "screen-fraud", "verify-income"]
    assert [e["Name"] for e in h if e["EventType"] == "ContextSucceeded" and e["SubType"] == "WaitForCallback"] == [
        "underwriter-approval",
        "customer-acceptance",
    ]
    order = [e["Name"] for e in h if e["EventType"] == "StepSucceeded" and e.get("ParentId") is None]
    assert order == ["validate-application", "risk-score", "generate-offer", "disburse-funds"]

    stopped_early = sds.wait(fraud, 30)
    assert json.loads(stopped_early.result or "{}") == {
        "application_id": "app-2",
        "status": "DECLINED",
        "risk": json.loads(stopped_early.result or "{}")["risk"],
        "reason": "fraud check",
    }
    assert "CallbackStarted" not in types(sds.history(fraud))

    no = sds.wait(declined, 30)
    assert no.status == "SUCCEEDED" and json.loads(no.result or "{}")["reason"] == "thin file"
    assert types(sds.history(declined)).count("CallbackStarted") == 1


# --- failure showcase -----------------------------------------------------------------------


def test_failure_showcase_ends_as_advertised(sds: Durascope) -> None:
    retry = start(sds, "retry-then-succeed", {})
    exhausted = start(sds, "exhausted-retries", {"max_attempts": 3})
    unanswered = start(sds, "callback-timeout", {"timeout_seconds": 1})
    too_long = start(sds, "execution-timeout", {"seconds": 60})
    mapped = start(
        sds,
        "map-with-failures",
        {"items": [f"item-{i}" for i in range(6)], "fail_indices": [1, 4], "tolerated_failures": 2},
    )
    over = start(
        sds,
        "map-with-failures",
        {"items": [f"item-{i}" for i in range(4)], "fail_indices": [0, 1, 2], "tolerated_failures": 1},
    )
    sleeper = start(sds, "long-wait", {"seconds": 3600})

    ok = sds.wait(retry, 30)
    assert ok.status == "SUCCEEDED" and json.loads(ok.result or "{}") == {"succeeded_on_attempt": 3}
    assert types(named(sds.history(retry), "flaky-call")) == [
        "StepStarted",
        "StepFailed",
        "StepStarted",
        "StepFailed",
        "StepStarted",
        "StepSucceeded",
    ]

    gone = sds.wait(exhausted, 30)
    assert gone.status == "FAILED" and gone.error and "attempt 3 of 3" in gone.error["ErrorMessage"]
    fails = [details(e) for e in sds.history(exhausted) if e["EventType"] == "StepFailed"]
    assert [f["RetryDetails"]["CurrentAttempt"] for f in fails] == [1, 2, 3]
    assert "NextAttemptDelaySeconds" not in fails[-1]["RetryDetails"]
    assert {f["Error"]["Payload"]["ErrorType"] for f in fails} == {"samples.failures.DownstreamUnavailable"}

    timed = sds.wait(unanswered, 30)
    assert timed.status == "FAILED" and (timed.error or {})["ErrorType"].endswith("CallbackTimeoutError")
    event = next(e for e in sds.history(unanswered) if e["EventType"] == "CallbackTimedOut")
    assert details(event)["Error"]["Payload"]["ErrorType"] == "Callback.Timeout"

    late = sds.wait(too_long, 30)
    assert late.status == "TIMED_OUT"
    h = sds.history(too_long)
    assert h[-1]["EventType"] == "ExecutionTimedOut"
    assert "WaitSucceeded" not in types(h)

    partial = sds.wait(mapped, 30)
    assert partial.status == "SUCCEEDED"
    assert json.loads(partial.result or "{}") == {
        "succeeded": 4,
        "failed": 2,
        "completion_reason": "ALL_COMPLETED",
        "errors": ["item-1 is malformed", "item-4 is malformed"],
    }
    hm = sds.history(mapped)
    assert [e["SubType"] for e in hm if e["EventType"] == "ContextSucceeded" and e["Name"] == "process-items"] == [
        "Map"
    ]
    iterations = [e for e in hm if e.get("SubType") == "MapIteration"]
    assert sorted(e["Name"] for e in iterations if e["EventType"] == "ContextFailed") == ["item-1", "item-4"]
    assert len([e for e in iterations if e["EventType"] == "ContextSucceeded"]) == 4

    too_many = sds.wait(over, 30)
    assert too_many.status == "FAILED" and "malformed" in (too_many.error or {})["ErrorMessage"]

    sds.wait_for(lambda: "WaitStarted" in types(sds.history(sleeper)), 20, "long wait did not start")
    assert sds.describe(sleeper).status == "RUNNING"
    sds.stop(sleeper, {"ErrorType": "Manual", "ErrorMessage": "stopped by the test"})
    stopped = sds.describe(sleeper)
    assert stopped.status == "STOPPED"
    assert sds.history(sleeper)[-1]["EventType"] == "ExecutionStopped"
