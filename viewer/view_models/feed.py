"""The status-change feed page and the webhook pages: subscriptions, and one subscription
with its delivery log, each delivery with the execution it was for.

Webhook records keep the followers' JSON shape (``recorder.followers.webhooks``, the
admin API's shape); the pages and their twins under ``/api/v1/webhooks`` show the same
records, with what the pages add (the execution of each delivery) added to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recorder.api import Durascope
from recorder.followers import webhooks as wh
from recorder.followers.status import STATUSES, Filter, head_position, parse_statuses, read_filtered
from recorder.queries import execution_refs
from viewer.view_models.common import ViewError, arg_list, int_arg

FEED_ROWS = 50
# How far back the feed page looks for its first rows (a filter that matches little
# must not scan the whole log).
FEED_LOOKBACK = 5000
DELIVERY_ROWS = 100


def parse_filter(args: Any) -> Filter:
    """``?function=&status=&name_prefix=`` of the feed and its JSON routes."""
    statuses = arg_list(args)("status")
    try:
        sts = parse_statuses(statuses) if statuses else None
    except ValueError as exc:
        raise ViewError(f"status: {exc}") from None
    function = args.get("function") or None
    prefix = args.get("name_prefix") or args.get("namePrefix") or None
    if function is not None and len(function) > 256:
        raise ViewError("function is longer than 256 characters")
    if prefix is not None and len(prefix) > 64:
        raise ViewError("name_prefix is longer than 64 characters")
    return Filter(sts, function, prefix)


@dataclass(frozen=True)
class FeedRow:
    position: int
    ts_ms: int
    status: str
    function: str
    name: str
    arn: str


@dataclass(frozen=True)
class FeedPage:
    """The newest status changes matching the filter, newest first; ``head`` is the log
    position the page was read at (live updates continue after it)."""

    function: str
    statuses: tuple[str, ...]
    name_prefix: str
    rows: tuple[FeedRow, ...]
    head: int
    all_statuses: tuple[str, ...] = STATUSES

    @property
    def query(self) -> dict[str, Any]:
        """The filter as query parameters (for the live stream and links)."""
        out: dict[str, Any] = {"status": list(self.statuses)} if self.statuses else {}
        if self.function:
            out["function"] = self.function
        if self.name_prefix:
            out["name_prefix"] = self.name_prefix
        return out


def build_feed(ds: Durascope, args: Any) -> FeedPage:
    flt = parse_filter(args)
    limit = int_arg(args, "limit", FEED_ROWS, 1, 500) or FEED_ROWS
    with ds.db.read() as s:
        head = head_position(s)
        changes, _ = read_filtered(s, max(head - FEED_LOOKBACK, 0), FEED_LOOKBACK, flt, ds.settings)
    rows = tuple(
        FeedRow(c.position, c.ts_ms, c.status, c.function_name, c.name, c.arn) for c in reversed(changes[-limit:])
    )
    return FeedPage(flt.function or "", tuple(sorted(flt.statuses or ())), flt.name_prefix or "", rows, head)


# --- webhooks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionRef:
    """The execution a delivery was for (arn and name are gone once it was purged)."""

    execution_id: str
    arn: str | None
    name: str | None
    function: str | None


@dataclass(frozen=True)
class Delivery:
    record: dict[str, Any]  # the followers' delivery record, with its attempt log
    execution: ExecutionRef

    def to_json(self) -> dict[str, Any]:
        return {
            **self.record,
            "execution": {
                "executionId": self.execution.execution_id,
                "arn": self.execution.arn,
                "name": self.execution.name,
                "function": self.execution.function,
            },
        }


@dataclass(frozen=True)
class WebhookList:
    webhooks: tuple[dict[str, Any], ...]
    statuses: tuple[str, ...] = STATUSES
    created: dict[str, Any] | None = None  # a subscription just created, with its secret (shown once)
    form_error: str | None = None
    form: dict[str, Any] = field(default_factory=dict)  # what was typed, when refused

    def to_json(self) -> dict[str, Any]:
        return {"webhooks": list(self.webhooks)}


@dataclass(frozen=True)
class WebhookPage:
    webhook: dict[str, Any]
    deliveries: tuple[Delivery, ...]
    form_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        # "deliveries" is the subscription's counts; the log goes beside it, as "attemptLog"
        # goes beside a delivery.
        return {**self.webhook, "deliveryLog": [d.to_json() for d in self.deliveries]}


def build_webhook_list(
    ds: Durascope,
    created: dict[str, Any] | None = None,
    form_error: str | None = None,
    form: dict[str, Any] | None = None,
) -> WebhookList:
    return WebhookList(tuple(wh.list_subscriptions(ds.db)), created=created, form_error=form_error, form=form or {})


def build_webhook(ds: Durascope, sub_id: str, form_error: str | None = None, limit: int = DELIVERY_ROWS) -> WebhookPage:
    subscription = wh.get_subscription(ds.db, sub_id)
    records = wh.list_deliveries(ds.db, sub_id, limit)
    refs = execution_refs(ds.db, [r["executionId"] for r in records])
    deliveries = tuple(
        Delivery(r, ExecutionRef(r["executionId"], *refs.get(r["executionId"], (None, None, None)))) for r in records
    )
    return WebhookPage(subscription, deliveries, form_error)


def create_from_form(ds: Durascope, form: Any) -> dict[str, Any]:
    """A subscription from the page's form; ServiceError (400) says what is wrong."""
    spec = wh.validate_spec(
        form.get("url"),
        arg_list(form)("status") or None,
        form.get("function") or None,
        form.get("name_prefix") or None,
        form.get("on_change_only") == "1",
        None,
        form.get("description") or None,
    )
    return wh.create_subscription(ds.db, spec)


WEBHOOK_ACTIONS = ("enable", "disable", "delete")


def apply_action(ds: Durascope, sub_id: str, action: str) -> None:
    if action not in WEBHOOK_ACTIONS:
        raise ViewError(f"unknown action {action[:40]!r}: use {', '.join(WEBHOOK_ACTIONS)}", 404)
    if action == "delete":
        wh.delete_subscription(ds.db, sub_id)
    else:
        wh.set_enabled(ds.db, sub_id, action == "enable")
