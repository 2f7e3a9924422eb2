"""Order saga with compensation: reserve inventory, charge the payment, ship.

Each forward step records what must be undone. When a later step fails (chosen by the input,
``fail_at``: ``"charge-payment"`` or ``"ship-order"``), the completed steps are compensated in
reverse order, each compensation its own checkpointed step (``refund-payment`` before
``release-inventory``), so a crash in the middle of a rollback resumes the rollback and never
refunds twice.

Outcome choice: a rolled-back saga ends **FAILED** with a ``SagaRolledBack`` error whose
message names the failed step and the compensations that ran. The order did not happen, and
a FAILED execution is what operators filter for; the compensations are in the history.
A saga without ``fail_at`` ends SUCCEEDED with the shipment.

Input::

    {"order_id": "ord-7", "sku": "LAMP-3", "qty": 1, "amount": 39.9, "fail_at": "ship-order"}
"""

from __future__ import annotations

import random
from collections.abc import Callable

from aws_durable_execution_sdk_python import DurableContext, StepContext, StepError, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.retries import (
    JitterStrategy,
    RetryStrategyConfig,
    create_retry_strategy,
)

FAIL_POINTS = ("charge-payment", "ship-order")
# Forward steps get one quick retry (a failure at ``fail_at`` is permanent, so it fails twice),
# compensations three: a rollback must try hard to finish.
FORWARD = StepConfig(
    retry_strategy=create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=2, initial_delay=Duration.from_seconds(1), backoff_rate=1, jitter_strategy=JitterStrategy.NONE
        )
    )
)
COMPENSATION = StepConfig(
    retry_strategy=create_retry_strategy(
        RetryStrategyConfig(
            max_attempts=3, initial_delay=Duration.from_seconds(1), backoff_rate=1, jitter_strategy=JitterStrategy.NONE
        )
    )
)


class SagaStepFailed(RuntimeError):
    """A forward step of the saga failed for good (the input asked for it)."""


class SagaRolledBack(RuntimeError):
    """The saga did not complete; every completed step has been compensated."""


def sample_input(rng: random.Random) -> dict:
    """Mostly happy sagas; some fail at the payment or at shipping."""
    sku, price = rng.choice([("LAMP-3", 39.9), ("DESK-9", 249.0), ("MUG-7", 8.0)])
    qty = rng.randint(1, 2)
    return {
        "order_id": f"ord-{rng.randint(1000, 9999)}",
        "sku": sku,
        "qty": qty,
        "amount": round(price * qty, 2),
        "fail_at": rng.choice([None, None, "charge-payment", "ship-order"]),
    }


def _forward(name: str, event: dict, result: dict) -> Callable[[StepContext], dict]:
    def run(step: StepContext) -> dict:
        if event.get("fail_at") == name:
            raise SagaStepFailed(f"{name} failed for order {event['order_id']} (attempt {step.attempt})")
        return result

    return run


@durable_execution
def handler(event: dict, context: DurableContext) -> dict:
    """Run reserve, charge, ship; on failure, compensate the completed steps in reverse order."""
    order_id = event["order_id"]
    # (compensation step name, what it returns) pushed after each forward step succeeds.
    undo: list[tuple[str, dict]] = []
    try:
        reservation = context.step(
            _forward(
                "reserve-inventory",
                event,
                {"reservation_id": f"res-{order_id}", "sku": event["sku"], "qty": event["qty"]},
            ),
            name="reserve-inventory",
            config=FORWARD,
        )
        undo.append(("release-inventory", {"released": reservation["reservation_id"]}))
        charge = context.step(
            _forward("charge-payment", event, {"charge_id": f"ch-{order_id}", "amount": event["amount"]}),
            name="charge-payment",
            config=FORWARD,
        )
        undo.append(("refund-payment", {"refunded": charge["charge_id"], "amount": charge["amount"]}))
        shipment = context.step(
            _forward("ship-order", event, {"tracking": f"TRK-{order_id}"}), name="ship-order", config=FORWARD
        )
    except StepError as failure:
        compensated = []
        for name, outcome in reversed(undo):
            context.step(lambda _, o=outcome: o, name=name, config=COMPENSATION)
            compensated.append(name)
        context.logger.warning("saga %s rolled back: %s", order_id, ", ".join(compensated) or "nothing to undo")
        raise SagaRolledBack(
            f"order {order_id} rolled back after: {failure.message}; compensated: {', '.join(compensated) or 'nothing'}"
        ) from None
    return {"order_id": order_id, "status": "SHIPPED", **shipment, "charge_id": charge["charge_id"]}
