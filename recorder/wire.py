"""Parse the wire shapes at the edge into typed values, and render operations back.

Everything a client sends (``OperationUpdate``, ``ErrorObject``) is checked here
against the Lambda API model's types and limits; the control plane only ever sees
``Update`` values. Bad input raises ``InvalidParameterValueException``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from recorder.errors import InvalidParameterValueException

OP_TYPES = frozenset({"EXECUTION", "CONTEXT", "STEP", "WAIT", "CALLBACK", "CHAINED_INVOKE"})
ACTIONS = frozenset({"START", "SUCCEED", "FAIL", "RETRY", "CANCEL"})
ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# SDK 3.0.0 sends a synthetic id for EXECUTION updates; accept what it sends.
EXEC_UPDATE_ID_RE = re.compile(r"^[a-zA-Z0-9_.:-]{1,128}$")
SUBTYPE_RE = re.compile(r"^[a-zA-Z0-9_-]{1,32}$")
PRINTABLE_RE = re.compile(r"^[\x20-\x7e]{1,256}$")
MAX_SECONDS = 31_622_400
# docs/protocol.md#rest-api: 1 MB per payload (6 MiB only for the EXECUTION result) and 1 MB per error
# (the API doc's limit; the test backend's 32 KiB is unconfirmed, so we take the doc's).
MAX_PAYLOAD = 1024 * 1024
MAX_EXECUTION_PAYLOAD = 6 * 1024 * 1024
MAX_ERROR = 1024 * 1024
# Text the store keeps verbatim in a column (payloads, results) cannot hold U+0000 on
# PostgreSQL; it is refused on every backend alike. ErrorType is held to 256 characters at
# the API, our choice (the API doc gives no limit; Step Functions' is 256); the store also
# cuts its error-type column to 256 for what reaches it another way (handler envelopes,
# imports), so this is the API's rule, not the column's.
ERROR_TYPE_RE = re.compile(r"[^\x00]{0,256}")


def _bad(msg: str) -> InvalidParameterValueException:
    return InvalidParameterValueException(msg)


def refuse_nul(value: str | bytes, where: str) -> None:
    if "\x00" in value if isinstance(value, str) else b"\x00" in value:
        raise _bad(f"{where} must not contain NUL (U+0000) characters")


@dataclass(frozen=True)
class ErrorObject:
    message: str | None = None
    type: str | None = None
    data: str | None = None
    stack_trace: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, raw: Any, where: str = "Error") -> ErrorObject:
        if not isinstance(raw, dict):
            raise _bad(f"{where} must be an object")
        unknown = set(raw) - {"ErrorMessage", "ErrorType", "ErrorData", "StackTrace"}
        if unknown:
            raise _bad(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
        for key in ("ErrorMessage", "ErrorType", "ErrorData"):
            if key in raw and raw[key] is not None and not isinstance(raw[key], str):
                raise _bad(f"{where}.{key} must be a string")
        trace = raw.get("StackTrace")
        if trace is not None and (not isinstance(trace, list) or not all(isinstance(x, str) for x in trace)):
            raise _bad(f"{where}.StackTrace must be a list of strings")
        if raw.get("ErrorType") is not None and not ERROR_TYPE_RE.fullmatch(raw["ErrorType"]):
            raise _bad(f"{where}.ErrorType must be at most 256 characters, without NUL (U+0000)")
        err = cls(
            raw.get("ErrorMessage"),
            raw.get("ErrorType"),
            raw.get("ErrorData"),
            tuple(trace) if trace is not None else None,
        )
        if len(json.dumps(err.to_dict())) > MAX_ERROR:
            raise _bad(f"{where} is larger than {MAX_ERROR} bytes")
        return err

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.message is not None:
            out["ErrorMessage"] = self.message
        if self.type is not None:
            out["ErrorType"] = self.type
        if self.data is not None:
            out["ErrorData"] = self.data
        if self.stack_trace is not None:
            out["StackTrace"] = list(self.stack_trace)
        return out


@dataclass(frozen=True)
class Update:
    id: str
    type: str
    action: str
    parent_id: str | None = None
    name: str | None = None
    sub_type: str | None = None
    payload: str | None = None
    error: ErrorObject | None = None
    replay_children: bool | None = None
    next_attempt_delay: int | None = None
    wait_seconds: int | None = None
    callback_timeout: int | None = None
    callback_heartbeat: int | None = None
    invoke_function: str | None = None
    invoke_tenant: str | None = None
    has_invoke_options: bool = False

    @classmethod
    def parse(cls, raw: Any, index: int) -> Update:
        where = f"Updates[{index}]"
        if not isinstance(raw, dict):
            raise _bad(f"{where} must be an object")
        op_type = raw.get("Type")
        action = raw.get("Action")
        if not isinstance(op_type, str) or op_type not in OP_TYPES:
            raise _bad(f"{where}.Type must be one of {', '.join(sorted(OP_TYPES))}")
        if not isinstance(action, str) or action not in ACTIONS:
            raise _bad(f"{where}.Action must be one of {', '.join(sorted(ACTIONS))}")
        op_id = raw.get("Id")
        id_re = EXEC_UPDATE_ID_RE if op_type == "EXECUTION" else ID_RE
        if not isinstance(op_id, str) or not id_re.fullmatch(op_id):
            raise _bad(f"{where}.Id must match [a-zA-Z0-9-_]{{1,64}}")
        parent = raw.get("ParentId")
        if parent is not None and (not isinstance(parent, str) or not ID_RE.fullmatch(parent)):
            raise _bad(f"{where}.ParentId must match [a-zA-Z0-9-_]{{1,64}}")
        name = raw.get("Name")
        if name is not None and (not isinstance(name, str) or not PRINTABLE_RE.fullmatch(name)):
            raise _bad(f"{where}.Name must be 1 to 256 printable ASCII characters")
        sub_type = raw.get("SubType")
        if sub_type is not None and (not isinstance(sub_type, str) or not SUBTYPE_RE.fullmatch(sub_type)):
            raise _bad(f"{where}.SubType must match [a-zA-Z0-9-_]{{1,32}}")
        payload = raw.get("Payload")
        if payload is not None:
            if not isinstance(payload, str):
                raise _bad(f"{where}.Payload must be a string")
            refuse_nul(payload, f"{where}.Payload")
            limit = MAX_EXECUTION_PAYLOAD if op_type == "EXECUTION" else MAX_PAYLOAD
            if len(payload.encode("utf-8")) > limit:
                raise _bad(f"{where}.Payload is larger than {limit} bytes")
        error = ErrorObject.parse(raw["Error"], f"{where}.Error") if raw.get("Error") is not None else None

        def opts(key: str) -> dict[str, Any] | None:
            value = raw.get(key)
            if value is None:
                return None
            if not isinstance(value, dict):
                raise _bad(f"{where}.{key} must be an object")
            return value

        def seconds(container: dict[str, Any] | None, key: str, lo: int, hi: int, label: str) -> int | None:
            if container is None or container.get(key) is None:
                return None
            value = container[key]
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise _bad(f"{where}.{label}.{key} must be a whole number from {lo} to {hi}")
            return value

        ctx = opts("ContextOptions")
        replay = None
        if ctx is not None and ctx.get("ReplayChildren") is not None:
            if not isinstance(ctx["ReplayChildren"], bool):
                raise _bad(f"{where}.ContextOptions.ReplayChildren must be a boolean")
            replay = ctx["ReplayChildren"]
        step = opts("StepOptions")
        wait = opts("WaitOptions")
        cb = opts("CallbackOptions")
        inv = opts("ChainedInvokeOptions")
        fn = tenant = None
        if inv is not None:
            fn = inv.get("FunctionName")
            if not isinstance(fn, str) or not fn or len(fn) > 170:
                raise _bad(f"{where}.ChainedInvokeOptions.FunctionName is required")
            tenant = inv.get("TenantId")
            if tenant is not None and (not isinstance(tenant, str) or not 1 <= len(tenant) <= 256):
                raise _bad(f"{where}.ChainedInvokeOptions.TenantId must be a string of 1 to 256 characters")
        return cls(
            id=op_id,
            type=op_type,
            action=action,
            parent_id=parent,
            name=name,
            sub_type=sub_type,
            payload=payload,
            error=error,
            replay_children=replay,
            next_attempt_delay=seconds(step, "NextAttemptDelaySeconds", 1, MAX_SECONDS, "StepOptions"),
            wait_seconds=seconds(wait, "WaitSeconds", 1, MAX_SECONDS, "WaitOptions"),
            callback_timeout=seconds(cb, "TimeoutSeconds", 0, 99_999_999, "CallbackOptions"),
            callback_heartbeat=seconds(cb, "HeartbeatTimeoutSeconds", 0, 99_999_999, "CallbackOptions"),
            invoke_function=fn,
            invoke_tenant=tenant,
            has_invoke_options=inv is not None,
        )


def parse_updates(raw: Any) -> list[Update]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _bad("Updates must be a list")
    if len(raw) > 1000:
        raise _bad("Updates may hold at most 1000 items")
    return [Update.parse(item, i) for i, item in enumerate(raw)]


# --- operations back to the wire --------------------------------------------------


# Timestamp renderings: the invocation event takes epoch ms, REST takes epoch
# seconds, the in-process SDK client takes aware datetimes (docs/protocol.md#invocation-event).
def ts_ms(value: int) -> int:
    return value


def ts_seconds(value: int) -> float:
    return value / 1000.0


def ts_datetime(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000.0, tz=dt.UTC)
