"""What executions cost on AWS (recorder.cost): the billed quantities of real runs, the
prices and their overrides, the twins and the pages, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from recorder import cost
from recorder.api import Durascope
from recorder.arns import ExecutionArn
from recorder.config import Settings
from tests.conftest import register
from viewer import create_app

TWIN_KEYS = {"lambdaDurableUsd", "stepFunctionsStandardUsd", "pricesAsOf", "breakdown"}


def _runs(ds: Durascope) -> dict[str, str]:
    register(ds, "pipeline", "th_stats:pipeline")
    arns = {
        kind: ds.start("pipeline", json.dumps(event), name=kind)
        for kind, event in (("plain", {}), ("retry", {"retry": True}), ("callback", {"callback": True}))
    }
    for kind in ("plain", "retry"):
        assert ds.wait(arns[kind], 60).status == "SUCCEEDED"

    def callback_id() -> str | None:
        started = [e for e in ds.history(arns["callback"]) if e["EventType"] == "CallbackStarted"]
        return started[0]["CallbackStartedDetails"]["CallbackId"] if started else None

    ds.callback_success(ds.wait_for(callback_id, 30, "no callback"), '"yes"')
    assert ds.wait(arns["callback"], 30).status == "SUCCEEDED"
    return arns


def _usage(est: cost.Estimate) -> dict[str, int]:
    return est.breakdown["usage"]


def _execution(ds: Durascope, arn: str, table: cost.PriceTable | None = None) -> cost.Estimate:
    return cost.execution_cost(ds.db, ExecutionArn.parse(arn).execution_id, "pipeline", table or cost.PriceTable.of())


def test_billed_quantities_of_real_runs(ds: Durascope) -> None:
    arns = _runs(ds)
    plain, retry, callback = (_execution(ds, arns[k]) for k in ("plain", "retry", "callback"))

    # plain: the execution, fetch and parse; Step Functions: two task states.
    assert {k: _usage(plain)[k] for k in ("executions", "invocations", "durableOperations", "stateTransitions")} == {
        "executions": 1,
        "invocations": 1,
        "durableOperations": 3,
        "stateTransitions": 2,
    }
    # retry: parse took a second attempt (after a 1 s delay, in a second invocation).
    assert (_usage(retry)["durableOperations"], _usage(retry)["stateTransitions"]) == (4, 3)
    assert _usage(retry)["invocations"] == 2
    # callback: + the wait_for_callback context, its callback and its submitter step.
    assert (_usage(callback)["durableOperations"], _usage(callback)["stateTransitions"]) == (6, 4)

    # The dollars are the quantities times the table's prices.
    p = cost.PRICES
    u = _usage(callback)
    expected_lambda = (
        u["invocations"] * p["lambdaRequest"].usd
        + u["activeMs"] / 1000 * 128 / 1024 * p["lambdaGbSecond"].usd
        + u["durableOperations"] * p["durableOperation"].usd
        + u["bytesWritten"] / cost.GB * p["durableDataWrittenGb"].usd
        + u["byteDaysRetained"] / cost.GB / 30 * p["durableDataRetainedGbMonth"].usd
    )
    assert callback.lambda_durable_usd == pytest.approx(expected_lambda, rel=1e-6)
    assert callback.step_functions_standard_usd == pytest.approx(4 * 0.025 / 1000)
    history_bytes = sum(len(json.dumps(e)) for e in ds.history(arns["callback"]))
    assert 0.5 * history_bytes < u["bytesWritten"] < 1.5 * history_bytes
    assert u["byteDaysRetained"] == u["bytesWritten"] * 14  # the default retention

    # Per 1,000 executions: the three runs' average, times 1,000.
    per_1000 = cost.function_cost(ds.db, "pipeline", 0, 2**62, cost.PriceTable.of())
    total = plain.lambda_durable_usd + retry.lambda_durable_usd + callback.lambda_durable_usd
    assert per_1000.lambda_durable_usd == pytest.approx(total * 1000 / 3, rel=1e-6)
    assert per_1000.breakdown["stepFunctionsStandard"]["stateTransitions"]["quantity"] == pytest.approx(3000.0)
    assert per_1000.breakdown["sampledExecutions"] == 3


def test_prices_and_memory_can_be_overridden(ds: Durascope) -> None:
    arns = _runs(ds)
    settings = Settings.from_env(
        {"DURASCOPE_COST_PRICES": '{"durableOperation": 0.001}', "DURASCOPE_COST_MEMORY_MB": "pipeline=1024,*=256"}
    )
    table = cost.PriceTable.of(settings.cost_prices, settings.cost_memory_mb)
    assert (table.memory_of("pipeline"), table.memory_of("other")) == (1024, 256)
    base, changed = _execution(ds, arns["plain"]), _execution(ds, arns["plain"], table)
    ops = changed.breakdown["lambdaDurable"]["durableOperations"]
    assert ops == {"quantity": 3, "usd": pytest.approx(0.003)}
    assert changed.breakdown["prices"]["durableOperation"]["source"] == "DURASCOPE_COST_PRICES"
    gb_s = changed.breakdown["lambdaDurable"]["gbSeconds"]["quantity"]
    assert gb_s == pytest.approx(base.breakdown["lambdaDurable"]["gbSeconds"]["quantity"] * 8, rel=1e-3)
    for bad, why in (('{"lambdaRequest": -1}', "at least 0"), ('{"nope": 1}', "unknown price"), ("[1]", "object")):
        with pytest.raises(ValueError, match=why):
            Settings.from_env({"DURASCOPE_COST_PRICES": bad})
    with pytest.raises(ValueError, match="DURASCOPE_COST_MEMORY_MB"):
        Settings.from_env({"DURASCOPE_COST_MEMORY_MB": "pipeline=64"})


def test_every_price_names_its_source() -> None:
    for key, price in cost.PRICES.items():
        assert price.usd > 0 and price.source.startswith("https://aws.amazon.com/"), key
    assert cost.PRICES_AS_OF[:4].isdigit()


def test_cost_twins_and_pages(ds: Durascope) -> None:
    arns = _runs(ds)
    client = create_app(durascope=ds).test_client()
    body: dict[str, Any] = client.get(f"/api/v1/executions/{arns['callback']}/cost").get_json()
    assert set(body) == TWIN_KEYS and body["pricesAsOf"] == cost.PRICES_AS_OF
    assert body["breakdown"]["usage"]["durableOperations"] == 6
    assert body["lambdaDurableUsd"] > 0 and body["stepFunctionsStandardUsd"] == pytest.approx(0.0001)

    per_1000 = client.get("/api/v1/functions/pipeline/cost?since=1h").get_json()
    assert set(per_1000) == TWIN_KEYS and per_1000["breakdown"]["sampledExecutions"] == 3
    assert per_1000["stepFunctionsStandardUsd"] == pytest.approx(3000 / 3 * 0.025 / 1000 * 3)

    html = {"Accept": "text/html"}
    page = client.get(f"/executions/{arns['callback']}", headers=html).get_data(as_text=True)
    assert 'id="cost"' in page and 'data-cost="lambda"' in page and "$0.0001" in page
    fn_page = client.get("/functions/pipeline", headers=html).get_data(as_text=True)
    assert "per 1,000 executions" in fn_page and 'data-cost="sfn"' in fn_page

    assert client.get("/api/v1/functions/nope/cost").status_code == 404
    assert client.get("/api/v1/functions/pipeline/cost?until=soon").status_code == 400
    missing = client.get(
        "/api/v1/executions/arn:aws:lambda:us-east-1:123456789012:function:pipeline:$LATEST/durable-execution/x/y/cost"
    )
    assert missing.status_code == 404 and missing.get_json()["error"]["status"] == 404


def test_dollar_amounts_read_as_money() -> None:
    from viewer.view_models.cost import usd

    assert [usd(v) for v in (0.1, 0.5, 12.3, 0.0496, 0.044, 0.000048, 0.0)] == [
        "$0.10",
        "$0.50",
        "$12.30",
        "$0.0496",
        "$0.044",
        "$0.000048",
        "$0",
    ]
