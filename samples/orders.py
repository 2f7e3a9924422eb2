"""Order processing: validate, pay (through a flaky gateway), hold for a confirmation period, confirm.

The payment gateway's flakiness is *driven by the input* (``fail_first_attempts``) and the
step's attempt number, never by ``random``: a replayed handler must take the same path, and
tests must be able to predict the history (N ``StepFailed`` with ``RetryDetails``, then
``StepSucceeded``).

``with_approval`` is the same flow with a human in the loop: the order waits for a manager's
callback before the payment. The submitter step returns the callback id (so it is visible in
the history as the step's result) and logs it with the context logger; whoever approves calls
``SendDurableExecutionCallbackSuccess`` with ``{"approved": true, "approver": "..."}`` or
``SendDurableExecutionCallbackFailure`` to reject (the execution then fails with the
callback's error).

Input::

    {"order_id": "ord-1042", "customer": "ada", "items": [{"sku": "BOOK-1", "qty": 2, "price": 12.5}],
     "fail_first_attempts": 1, "confirmation_seconds": 2, "approval_timeout_seconds": 3600}
"""

from __future__ import annotations

import json
import random

from aws_durable_execution_sdk_python import DurableContext, StepContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig, WaitForCallbackConfig
from aws_durable_execution_sdk_python.retries import (
    JitterStrategy,
    RetryPresets,
    RetryStrategyConfig,
    create_retry_strategy,
)
from aws_durable_execution_sdk_python.types import WaitForCallbackContext

CUSTOMERS = ["ada", "grace", "linus", "barbara", "ken", "margaret", "dennis", "frances"]
CATALOG = {"BOOK-1": 12.5, "MUG-7": 8.0, "LAMP-3": 39.9, "DESK-9": 249.0, "PEN-2": 1.5}


class InvalidOrder(ValueError):
    """The order can never be processed: retrying would not help."""


class OrderRejected(RuntimeError):
    """The approver answered the callback with ``{"approved": false}``."""


class PaymentGatewayError(RuntimeError):
    """A transient payment failure: the gateway timed out; the charge is safe to retry."""


# Only gateway errors are retried, with a fixed 1 s delay and no jitter, so the demo moves
# and the history is predictable. Four attempts in all: fail_first_attempts >= 4 exhausts them.
PAYMENT_RETRY = StepConfig(
    retry_strategy=create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=4,
            initial_delay=Duration.from_seconds(1),
            backoff_rate=1,
            jitter_strategy=JitterStrategy.NONE,
            retryable_error_types=[PaymentGatewayError],
        )
    )
)
NO_RETRY = StepConfig(retry_strategy=RetryPresets.none())


def sample_input(rng: random.Random) -> dict:
    """A plausible order; about one in four needs one or two payment retries."""
    skus = rng.sample(sorted(CATALOG), k=rng.randint(1, 3))
    return {
        "order_id": f"ord-{rng.randint(1000, 9999)}",
        "customer": rng.choice(CUSTOMERS),
        "items": [{"sku": s, "qty": rng.randint(1, 3), "price": CATALOG[s]} for s in skus],
        "fail_first_attempts": rng.choice([0, 0, 0, 1, 2]),
        "confirmation_seconds": 2,
    }


def validate_order(event: dict) -> dict:
    """Pure validation: the same input always gives the same answer (or the same error)."""
    items = event.get("items") or []
    if not event.get("order_id"):
        raise InvalidOrder("order has no order_id")
    if not items:
        raise InvalidOrder(f"order {event['order_id']} has no items")
    for item in items:
        if int(item.get("qty", 0)) <= 0:
            raise InvalidOrder(f"order {event['order_id']}: quantity of {item.get('sku')} must be positive")
    total = round(sum(float(i["price"]) * int(i["qty"]) for i in items), 2)
    return {"order_id": event["order_id"], "customer": event.get("customer", "anonymous"), "total": total}


def _payment_step(order: dict, fail_first_attempts: int):
    def charge(step: StepContext) -> dict:
        if step.attempt <= fail_first_attempts:
            raise PaymentGatewayError(f"payment gateway timed out (attempt {step.attempt})")
        step.logger.info("charged %s for order %s", order["total"], order["order_id"])
        return {"payment_id": f"pay-{order['order_id']}", "amount": order["total"], "attempts": step.attempt}

    return charge


def _pay_and_confirm(event: dict, context: DurableContext, order: dict) -> dict:
    payment = context.step(
        _payment_step(order, int(event.get("fail_first_attempts", 0))), name="process-payment", config=PAYMENT_RETRY
    )
    context.wait(Duration.from_seconds(max(1, int(event.get("confirmation_seconds", 2)))), name="confirmation-period")
    return context.step(
        lambda _: {
            "order_id": order["order_id"],
            "status": "CONFIRMED",
            "payment_id": payment["payment_id"],
            "total": order["total"],
        },
        name="confirm-order",
    )


@durable_execution
def handler(event: dict, context: DurableContext) -> dict:
    """Validate, pay (retrying gateway timeouts), wait the confirmation period, confirm."""
    order = context.step(lambda _: validate_order(event), name="validate-order", config=NO_RETRY)
    return _pay_and_confirm(event, context, order)


def _request_approval(order: dict):
    def submit(callback_id: str, ctx: WaitForCallbackContext) -> dict:
        # In production this would e-mail the approver; here the id is logged and returned
        # (it becomes the submitter step's result in the history).
        ctx.logger.info(
            "approval requested for order %s (total %s): callback id %s", order["order_id"], order["total"], callback_id
        )
        return {"callback_id": callback_id, "order_id": order["order_id"], "approver": "manager"}

    return submit


@durable_execution
def with_approval(event: dict, context: DurableContext) -> dict:
    """Validate, wait for a manager's approval callback, then pay and confirm as ``handler``."""
    order = context.step(lambda _: validate_order(event), name="validate-order", config=NO_RETRY)
    config = WaitForCallbackConfig(timeout=Duration.from_seconds(int(event.get("approval_timeout_seconds", 3600))))
    raw = context.wait_for_callback(_request_approval(order), name="manager-approval", config=config)
    decision = json.loads(raw) if isinstance(raw, str) and raw else {}
    if not decision.get("approved", True):
        raise OrderRejected(
            f"order {order['order_id']} rejected by {decision.get('approver', 'the approver')}: "
            f"{decision.get('reason', 'no reason given')}"
        )
    context.logger.info("order %s approved by %s", order["order_id"], decision.get("approver", "unknown"))
    result = _pay_and_confirm(event, context, order)
    return {**result, "approved_by": decision.get("approver")}
