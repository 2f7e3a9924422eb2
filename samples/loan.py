"""Loan origination: checks in parallel, a risk score, an offer, two human decisions, disbursal.

1. ``validate-application`` (no retry: a bad application stays bad);
2. ``background-checks``: ``context.parallel`` with three named branches (``credit-bureau``,
   ``income-verification``, ``fraud-check``), each a child context of type ParallelBranch
   running its own step, so one slow bureau does not hold the others;
3. ``risk-score`` and ``generate-offer`` (a fraud hit or a score over 70 declines at once);
4. ``underwriter-approval``: wait_for_callback, answered with ``{"approved": true|false, "underwriter": "..."}``;
5. ``customer-acceptance``: wait_for_callback, answered with ``{"accepted": true|false}``;
   its timeout is the offer's validity (``offer_valid_seconds``);
6. ``disburse-funds``.

Declines and refusals are business outcomes: the execution SUCCEEDS with a ``status`` of
``DECLINED`` or ``OFFER_REFUSED``. A missing answer before a timeout fails it (Callback.Timeout).

Input::

    {"application_id": "app-12", "applicant": "grace", "amount": 15000, "term_months": 36,
     "annual_income": 72000, "credit_score": 710, "fraud_flag": false,
     "approval_timeout_seconds": 3600, "offer_valid_seconds": 3600}
"""

from __future__ import annotations

import json
import random

from aws_durable_execution_sdk_python import DurableContext, ParallelBranch, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig, WaitForCallbackConfig
from aws_durable_execution_sdk_python.retries import RetryPresets
from aws_durable_execution_sdk_python.types import WaitForCallbackContext

APPLICANTS = ["ada", "grace", "linus", "barbara", "ken", "margaret", "dennis", "frances"]
NO_RETRY = StepConfig(retry_strategy=RetryPresets.none())
MAX_RISK = 70


class InvalidApplication(ValueError):
    """The application is incomplete or out of the product's range."""


def sample_input(rng: random.Random) -> dict:
    """A plausible application; about one in eight trips the fraud check."""
    return {
        "application_id": f"app-{rng.randint(100, 999)}",
        "applicant": rng.choice(APPLICANTS),
        "amount": rng.choice([5000, 10000, 15000, 25000, 40000]),
        "term_months": rng.choice([12, 24, 36, 60]),
        "annual_income": rng.randint(30, 160) * 1000,
        "credit_score": rng.randint(560, 820),
        "fraud_flag": rng.random() < 0.125,
        "approval_timeout_seconds": 3600,
        "offer_valid_seconds": 3600,
    }


def validate_application(event: dict) -> dict:
    amount = int(event.get("amount", 0))
    if amount <= 0 or amount > 100_000:
        raise InvalidApplication(f"amount must be between 1 and 100000, got {amount}")
    if not event.get("applicant"):
        raise InvalidApplication("applicant is missing")
    return {
        "application_id": event["application_id"],
        "applicant": event["applicant"],
        "amount": amount,
        "term_months": int(event.get("term_months", 36)),
    }


def credit_bureau(event: dict) -> dict:
    score = int(event.get("credit_score", 650))
    return {"bureau": "equifax-sim", "score": score, "band": "prime" if score >= 680 else "subprime"}


def income_verification(event: dict) -> dict:
    income = int(event.get("annual_income", 0))
    return {
        "verified": income > 0,
        "annual_income": income,
        "debt_to_income": round(int(event.get("amount", 0)) / max(income, 1), 2),
    }


def fraud_check(event: dict) -> dict:
    flagged = bool(event.get("fraud_flag", False))
    return {"flagged": flagged, "reason": "identity mismatch" if flagged else None}


def risk_score(credit: dict, income: dict, fraud: dict) -> dict:
    """0 (safe) .. 100 (risky); deterministic in the checks' results."""
    score = max(0, min(100, (850 - credit["score"]) // 4 + int(income["debt_to_income"] * 40)))
    if not income["verified"]:
        score = 100
    return {
        "risk": score,
        "fraud": fraud["flagged"],
        "decision": "refer" if score <= MAX_RISK and not fraud["flagged"] else "decline",
    }


def generate_offer(application: dict, risk: dict) -> dict:
    rate = round(4.5 + risk["risk"] / 10, 2)
    months = application["term_months"]
    monthly = round(application["amount"] * (1 + rate / 100 * months / 12) / months, 2)
    return {
        "offer_id": f"offer-{application['application_id']}",
        "amount": application["amount"],
        "rate_percent": rate,
        "term_months": months,
        "monthly_payment": monthly,
    }


def _notify(role: str, subject: str):
    def submit(callback_id: str, ctx: WaitForCallbackContext) -> dict:
        ctx.logger.info("%s decision requested for %s: callback id %s", role, subject, callback_id)
        return {"callback_id": callback_id, "role": role, "subject": subject}

    return submit


def _wait_for_decision(context: DurableContext, name: str, role: str, subject: str, timeout: int) -> dict:
    config = WaitForCallbackConfig(timeout=Duration.from_seconds(timeout))
    raw = context.wait_for_callback(_notify(role, subject), name=name, config=config)
    return json.loads(raw) if isinstance(raw, str) and raw else {}


@durable_execution
def handler(event: dict, context: DurableContext) -> dict:
    """Validate, check in parallel, score, offer, get both approvals, disburse."""
    application = context.step(lambda _: validate_application(event), name="validate-application", config=NO_RETRY)
    checks = context.parallel(
        [
            ParallelBranch(
                lambda ctx: ctx.step(lambda _: credit_bureau(event), name="query-credit-bureau"), name="credit-bureau"
            ),
            ParallelBranch(
                lambda ctx: ctx.step(lambda _: income_verification(event), name="verify-income"),
                name="income-verification",
            ),
            ParallelBranch(lambda ctx: ctx.step(lambda _: fraud_check(event), name="screen-fraud"), name="fraud-check"),
        ],
        name="background-checks",
    )
    checks.throw_if_error()
    by_index = {item.index: item.result for item in checks.all}
    credit, income, fraud = by_index[0], by_index[1], by_index[2]
    risk = context.step(lambda _: risk_score(credit, income, fraud), name="risk-score")
    app_id = application["application_id"]
    if risk["decision"] == "decline":
        return {
            "application_id": app_id,
            "status": "DECLINED",
            "risk": risk["risk"],
            "reason": "fraud check" if risk["fraud"] else "risk too high",
        }
    offer = context.step(lambda _: generate_offer(application, risk), name="generate-offer")

    underwriter = _wait_for_decision(
        context,
        "underwriter-approval",
        "underwriter",
        offer["offer_id"],
        int(event.get("approval_timeout_seconds", 3600)),
    )
    if not underwriter.get("approved", False):
        return {
            "application_id": app_id,
            "status": "DECLINED",
            "risk": risk["risk"],
            "reason": underwriter.get("reason", "underwriter declined"),
        }
    customer = _wait_for_decision(
        context, "customer-acceptance", "customer", offer["offer_id"], int(event.get("offer_valid_seconds", 3600))
    )
    if not customer.get("accepted", False):
        return {"application_id": app_id, "status": "OFFER_REFUSED", "offer_id": offer["offer_id"]}
    disbursal = context.step(
        lambda _: {"transfer_id": f"xfer-{app_id}", "amount": offer["amount"], "to": application["applicant"]},
        name="disburse-funds",
    )
    return {
        "application_id": app_id,
        "status": "FUNDED",
        "offer": offer,
        "underwriter": underwriter.get("underwriter"),
        **disbursal,
    }
