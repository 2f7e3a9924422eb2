"""Typed values crossing the control plane's boundary, and the small helpers they need."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from recorder.errors import InvalidParameterValueException
from recorder.store.models import Function

# How often every engine re-reads due timers and owed invocations from the database
# (``Engine``'s sweep): what other engines write is found within this even unannounced.
SWEEP_SECONDS = 1.0


def now_ms() -> int:
    return int(time.time() * 1000)


def loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


def normalize_input(payload: str | bytes | None) -> str | None:
    """Store valid JSON only: a non-JSON input would crash the handler (spec 2.1)."""
    if payload is None:
        return None
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidParameterValueException("Payload must be UTF-8 text") from exc
    if payload.strip() == "":
        return None
    try:
        json.loads(payload)
        return payload
    except ValueError:
        return json.dumps(payload)


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler: str
    code_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: int = 900
    execution_timeout: int = 86400
    retention_days: int = 14
    concurrency: int = 0

    @classmethod
    def from_row(cls, row: Function) -> FunctionSpec:
        return cls(row.name, row.handler, row.code_dir, json.loads(row.env_json or "{}"), row.timeout_seconds,
                   row.execution_timeout_seconds, row.retention_days, row.concurrency)


@dataclass(frozen=True)
class StartResult:
    arn: str
    execution_id: str
    created: bool


@dataclass(frozen=True)
class InvocationInput:
    execution_id: str
    arn: str
    request_id: str
    token: str
    operations: list[dict[str, Any]]
    next_marker: str
    updated_operation_ids: list[str]
    function: FunctionSpec
    start_ms: int


@dataclass(frozen=True)
class InvocationOutcome:
    """What an invocation came back with. ``status`` is SUCCEEDED, FAILED, PENDING,
    ERROR (the invocation itself failed: exception, crash, timeout) or INVALID
    (output that is not an envelope)."""

    status: str
    result: str | None = None
    error: dict[str, Any] | None = None
    has_result: bool = False
    has_error: bool = False

    @classmethod
    def from_envelope(cls, output: Any) -> InvocationOutcome:
        if not isinstance(output, dict) or output.get("Status") not in ("SUCCEEDED", "FAILED", "PENDING"):
            return cls("INVALID", error={"ErrorType": "InvalidParameterValueException",
                                         "ErrorMessage": f"Invalid handler output: {str(output)[:500]}"})
        err = output.get("Error")
        result = output.get("Result")
        if result is not None and (not isinstance(result, str) or "\x00" in result):
            # The store keeps a result verbatim as text, and PostgreSQL text cannot hold U+0000.
            return cls("INVALID", error={"ErrorType": "InvalidParameterValueException",
                                         "ErrorMessage": "Invalid handler output: Result must be a string "
                                                         "without NUL (U+0000) characters"})
        return cls(output["Status"], result=result, error=err if isinstance(err, dict) else None,
                   has_result="Result" in output and output.get("Result") not in (None, ""),
                   has_error=err is not None)


Listener = Callable[[set[str], list[int]], None]
CloseListener = Callable[[list[str]], None]


class StartClaimer(Protocol):
    """An engine in this process that takes the first invocation of the executions started
    here, in the transaction that starts them (``ControlPlane.start_claimer``)."""

    def reserve(self, execution_id: str) -> str | None:
        """The lease owner's name if a free invocation slot is now held for this execution."""

    def release(self, execution_id: str) -> None:
        """Give back a reserved slot whose claim did not commit."""

    def run(self, inv: InvocationInput) -> None:
        """Run a committed claim."""
