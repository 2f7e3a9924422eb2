"""The waiting board (``/waiting``): suspended executions and what each waits for, the
oldest first, with what needs a look highlighted, and its bulk actions.

Highlighted: a callback past its heartbeat deadline or about to time out (or past it), a
step in its third or later retry, an execution suspended longer than the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recorder.api import Durascope
from recorder.errors import ServiceError
from recorder.waiting import Suspended, Waiting, suspended_executions
from viewer.view_models.common import ViewError, arg_list, int_arg, now_ms
from viewer.view_models.errors import iso

KINDS = ("wait", "callback", "retry", "condition", "chained-invoke", "stuck-retrying")
KIND_LABELS = {"wait": "waits", "callback": "callbacks", "retry": "step retries", "condition": "condition checks",
               "chained-invoke": "chained invokes", "stuck-retrying": "stuck retrying (3rd retry or later)"}
STUCK_RETRY = 3  # the retry number from which a step counts as stuck
SOON_MS = 60_000  # a callback timing out within this is about to time out
DEFAULT_THRESHOLD_MIN = 60
ACTIONS = ("stop", "fail-callbacks", "heartbeat")


@dataclass(frozen=True)
class WaitingItem:
    item: Waiting
    flags: tuple[str, ...]

    @property
    def label(self) -> str:
        w = self.item
        name = f"'{w.name or w.operation_id[:12]}'"
        return {"wait": f"wait {name}", "callback": f"callback {name}",
                "retry": f"retry {w.attempt} of step {name}", "condition": f"check {w.attempt + 1} of condition {name}",
                "chained-invoke": f"chained execution {name}"}[w.kind]

    def to_json(self) -> dict[str, Any]:
        w = self.item
        out: dict[str, Any] = {"kind": w.kind, "name": w.name, "operationId": w.operation_id, "until": iso(w.until_ms)}
        if w.kind in ("retry", "condition"):
            out["attempt"] = w.attempt
        if w.callback_id:
            out["callbackId"] = w.callback_id
            out["heartbeatDue"] = iso(w.heartbeat_due_ms)
        if w.chained_arn:
            out["chainedExecutionArn"] = w.chained_arn
        if self.flags:
            out["highlights"] = list(self.flags)
        return out


@dataclass(frozen=True)
class BoardRow:
    execution: Suspended
    items: tuple[WaitingItem, ...]
    flags: tuple[str, ...]  # of the execution itself: suspended longer than the threshold

    @property
    def highlighted(self) -> bool:
        return bool(self.flags) or any(i.flags for i in self.items)

    def to_json(self) -> dict[str, Any]:
        e = self.execution
        return {"executionArn": e.arn, "name": e.name, "function": e.function, "suspendedSince": iso(e.suspended_since_ms),
                "waitingOn": [i.to_json() for i in self.items], "highlights": list(self.flags)}


@dataclass(frozen=True)
class WaitingBoard:
    function: str
    kind: str
    threshold_min: int
    rows: tuple[BoardRow, ...]
    now_ms: int
    notice: str = ""
    kinds: tuple[str, ...] = KINDS
    kind_labels: dict[str, str] | None = None

    @property
    def query(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.function:
            out["function"] = self.function
        if self.kind:
            out["kind"] = self.kind
        if self.threshold_min != DEFAULT_THRESHOLD_MIN:
            out["threshold"] = self.threshold_min
        return out

    def to_json(self) -> dict[str, Any]:
        return {"executions": [r.to_json() for r in self.rows], "thresholdMinutes": self.threshold_min}


def _item_flags(w: Waiting, now: int) -> tuple[str, ...]:
    flags = []
    if w.kind == "callback":
        if w.heartbeat_due_ms is not None and w.heartbeat_due_ms < now:
            flags.append("heartbeat overdue")
        if w.until_ms is not None and w.until_ms < now + SOON_MS:
            flags.append("timing out" if w.until_ms >= now else "timeout overdue")
    if w.kind == "retry" and w.attempt >= STUCK_RETRY:
        flags.append("stuck retrying")
    return tuple(flags)


def _matches(kind: str, items: tuple[WaitingItem, ...]) -> bool:
    if not kind:
        return True
    if kind == "stuck-retrying":
        return any("stuck retrying" in i.flags for i in items)
    return any(i.item.kind == kind for i in items)


def build_waiting(ds: Durascope, args: Any, notice: str = "") -> WaitingBoard:
    function = (args.get("function") or "").strip()
    if len(function) > 64:
        raise ViewError("function is longer than 64 characters")
    kind = (args.get("kind") or "").strip()
    if kind and kind not in KINDS:
        raise ViewError(f"kind must be one of {', '.join(KINDS)}")
    threshold = int_arg(args, "threshold", DEFAULT_THRESHOLD_MIN, 1, 525_600) or DEFAULT_THRESHOLD_MIN
    now = now_ms()
    with ds.db.read() as conn:
        found = suspended_executions(conn, function or None)
    rows = []
    for e in found:
        items = tuple(WaitingItem(w, _item_flags(w, now)) for w in e.waiting_on)
        if not _matches(kind, items):
            continue
        flags = ("suspended long",) if now - e.suspended_since_ms > threshold * 60_000 else ()
        rows.append(BoardRow(e, items, flags))
    return WaitingBoard(function, kind, threshold, tuple(rows), now, notice, KINDS, KIND_LABELS)


@dataclass(frozen=True)
class BulkAction:
    action: str
    targets: tuple[str, ...]  # execution ARNs (stop) or callback ids
    error: dict[str, str]

    @classmethod
    def from_form(cls, form: Any) -> BulkAction:
        action = form.get("action", "")
        if action not in ACTIONS:
            raise ViewError(f"action must be one of {', '.join(ACTIONS)}")
        key = "arn" if action == "stop" else "callback_id"
        targets = tuple(dict.fromkeys(t.strip() for t in arg_list(form)(key) if t.strip()))
        if not targets:
            what = "executions" if action == "stop" else "callbacks"
            raise ViewError(f"Select the {what} to act on first")
        if len(targets) > 500:
            raise ViewError("At most 500 at a time")
        error: dict[str, str] = {}
        if action == "fail-callbacks":
            error_type = (form.get("error_type") or "").strip()
            message = (form.get("error_message") or "").strip()
            if not error_type and not message:
                raise ViewError("Give the error the callbacks fail with (a type, a message or both)")
            if error_type:
                error["ErrorType"] = error_type[:256]
            if message:
                error["ErrorMessage"] = message[:4096]
        return cls(action, targets, error)


@dataclass(frozen=True)
class BulkOutcome:
    action: str
    done: int
    refused: tuple[tuple[str, str], ...]  # (target, why)


def apply_bulk(ds: Durascope, bulk: BulkAction) -> BulkOutcome:
    """Each target through the control plane's own API; one refusal (already closed,
    already answered) does not stop the others."""
    done, refused = 0, []
    for target in bulk.targets:
        try:
            if bulk.action == "stop":
                ds.stop(target)
            elif bulk.action == "fail-callbacks":
                ds.callback_failure(target, bulk.error)
            else:
                ds.callback_heartbeat(target)
            done += 1
        except ServiceError as exc:
            refused.append((target, exc.message))
    return BulkOutcome(bulk.action, done, tuple(refused))
