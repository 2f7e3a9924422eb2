"""Document ETL with a human approval gate: extract, transform, approve (callback), load.

The approval is a ``wait_for_callback`` with a timeout (and optional heartbeat timeout) taken
from the input. The reviewer answers ``SendDurableExecutionCallbackSuccess`` with
``{"approved": true, "reviewer": "..."}`` (the document is loaded) or
``{"approved": false, "reason": "..."}`` (a rejection is a business outcome: the execution
SUCCEEDS with ``status: "REJECTED"`` and nothing is loaded). No answer before the timeout
fails the execution with ``Callback.Timeout``; a reviewer working on a long review sends
heartbeats to keep the callback alive.

Bulk mode: ``bulk_inputs(n, rng)`` builds N documents for one batch of executions (one
execution per document, as a queue of uploads would).

Input::

    {"document_id": "doc-3", "source": "s3://inbox/doc-3.csv", "records": 120,
     "approval_timeout_seconds": 600, "heartbeat_timeout_seconds": 0}
"""

from __future__ import annotations

import json
import random

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig, WaitForCallbackConfig
from aws_durable_execution_sdk_python.retries import RetryPresets
from aws_durable_execution_sdk_python.types import WaitForCallbackContext

KINDS = ("invoice", "receipt", "contract", "timesheet")
NO_RETRY = StepConfig(retry_strategy=RetryPresets.none())


class EmptyDocument(ValueError):
    """A document without records cannot be transformed."""


def sample_input(rng: random.Random) -> dict:
    """One uploaded document."""
    doc = f"doc-{rng.randint(100, 999)}"
    kind = rng.choice(KINDS)
    return {
        "document_id": doc,
        "kind": kind,
        "source": f"s3://inbox/{kind}/{doc}.csv",
        "records": rng.randint(5, 500),
        "approval_timeout_seconds": 600,
        "heartbeat_timeout_seconds": 0,
    }


def bulk_inputs(n: int, rng: random.Random, **overrides: object) -> list[dict]:
    """N documents with distinct ids (``overrides`` apply to each, e.g. a shorter timeout)."""
    docs = []
    for i in range(n):
        doc = sample_input(rng)
        doc["document_id"] = f"{doc['document_id']}-{i:03d}"
        doc["source"] = f"s3://inbox/{doc['kind']}/{doc['document_id']}.csv"
        docs.append({**doc, **overrides})
    return docs


def extract(event: dict) -> dict:
    records = int(event.get("records", 0))
    if records <= 0:
        raise EmptyDocument(f"{event.get('source')} holds no records")
    return {
        "document_id": event["document_id"],
        "source": event.get("source"),
        "rows": records,
        "kind": event.get("kind", "invoice"),
    }


def transform(extracted: dict) -> dict:
    # Deterministic "cleaning": a fixed share of the rows is dropped as duplicates.
    duplicates = extracted["rows"] // 20
    return {
        **extracted,
        "rows": extracted["rows"] - duplicates,
        "duplicates_dropped": duplicates,
        "table": f"warehouse.{extracted['kind']}s",
    }


def _submit_for_review(doc: dict):
    def submit(callback_id: str, ctx: WaitForCallbackContext) -> dict:
        ctx.logger.info(
            "review requested for %s (%d rows): callback id %s", doc["document_id"], doc["rows"], callback_id
        )
        return {"callback_id": callback_id, "document_id": doc["document_id"], "queue": "data-stewards"}

    return submit


@durable_execution
def handler(event: dict, context: DurableContext) -> dict:
    """Extract and transform, wait for a reviewer's decision, load only approved documents."""
    extracted = context.step(lambda _: extract(event), name="extract", config=NO_RETRY)
    transformed = context.step(lambda _: transform(extracted), name="transform", config=NO_RETRY)
    config = WaitForCallbackConfig(
        timeout=Duration.from_seconds(int(event.get("approval_timeout_seconds", 600))),
        heartbeat_timeout=Duration.from_seconds(int(event.get("heartbeat_timeout_seconds", 0))),
    )
    raw = context.wait_for_callback(_submit_for_review(transformed), name="approval", config=config)
    decision = json.loads(raw) if isinstance(raw, str) and raw else {}
    if not decision.get("approved", False):
        return {
            "document_id": event["document_id"],
            "status": "REJECTED",
            "reason": decision.get("reason", "not approved"),
        }
    loaded = context.step(lambda _: {"table": transformed["table"], "rows_loaded": transformed["rows"]}, name="load")
    return {"document_id": event["document_id"], "status": "LOADED", "reviewer": decision.get("reviewer"), **loaded}
