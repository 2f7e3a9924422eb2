"""Typed values crossing the control plane's boundary, and the small helpers they need."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import Row

from recorder.errors import InvalidParameterValueException
from recorder.store.models import Function

# Lambda's limit on a synchronous response, as its Runtime API measures it: "6 MB" in the
# quotas, 6,291,556 bytes in the error it gives (6 MiB and 100 bytes).
RESPONSE_LIMIT = 6_291_556
RESPONSE_TOO_LARGE = {
    "errorType": "Function.ResponseSizeTooLarge",
    "errorMessage": f"Response payload size exceeded maximum allowed payload size ({RESPONSE_LIMIT} bytes).",
}

# How often every engine re-reads due timers and owed invocations from the database
# (``Engine``'s sweep): what other engines write is found within this even unannounced.
SWEEP_SECONDS = 1.0


def now_ms() -> int:
    return int(time.time() * 1000)


def loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


def normalize_input(payload: str | bytes | None) -> str | None:
    """Store valid JSON only: a non-JSON input would crash the handler (docs/protocol.md#invocation-event)."""
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


def split_handler(handler: str) -> tuple[str, str]:
    """``pkg.module:function`` or Lambda's ``pkg.module.function``."""
    if ":" in handler:
        module, _, attr = handler.partition(":")
    else:
        module, _, attr = handler.rpartition(".")
    if not module or not attr:
        raise ValueError(f"handler {handler!r} must be written pkg.module.function or pkg.module:function")
    return module, attr


@dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    """A registered function: what the registry stores (``from_row``), and what a worker
    host needs to run it (``to_dict``/``from_dict``: the runtime API's wire form)."""

    name: str
    handler: str
    code_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: int = 900
    execution_timeout: int = 86400
    retention_days: int = 14
    concurrency: int = 0
    memory_mb: int = 512
    # What the SDK inside this function's runtimes signs with (recorder.sigv4.KeyRing's
    # narrow key), handed out by an engine that requires signatures.
    runtime_credentials: tuple[str, str] | None = None

    @classmethod
    def from_row(cls, row: Function | Row[Any]) -> FunctionSpec:
        return cls(
            name=row.name,
            handler=row.handler,
            code_dir=row.code_dir,
            env=json.loads(row.env_json or "{}"),
            timeout=row.timeout_seconds,
            execution_timeout=row.execution_timeout_seconds,
            retention_days=row.retention_days,
            concurrency=row.concurrency,
        )

    @property
    def lambda_handler(self) -> str:
        """``awslambdaric`` takes Lambda's ``module.function`` form."""
        module, attr = split_handler(self.handler)
        return f"{module}.{attr}"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FunctionSpec:
        creds = d.get("RuntimeCredentials")
        return cls(
            name=str(d["FunctionName"]),
            handler=str(d["Handler"]),
            code_dir=d.get("CodeDir"),
            env=dict(d.get("Environment") or {}),
            timeout=int(d.get("Timeout", 900)),
            memory_mb=int(d.get("MemorySize", 512)),
            runtime_credentials=(str(creds["AccessKeyId"]), str(creds["SecretAccessKey"])) if creds else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "FunctionName": self.name,
            "Handler": self.handler,
            "CodeDir": self.code_dir,
            "Environment": self.env,
            "Timeout": self.timeout,
            "MemorySize": self.memory_mb,
        }
        if self.runtime_credentials is not None:
            out["RuntimeCredentials"] = {
                "AccessKeyId": self.runtime_credentials[0],
                "SecretAccessKey": self.runtime_credentials[1],
            }
        return out


@dataclass(frozen=True, kw_only=True)
class StartResult:
    arn: str
    execution_id: str
    created: bool


@dataclass(frozen=True, kw_only=True)
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


class OutcomeStatus(StrEnum):
    """How an invocation ended: the handler's envelope status, or ERROR (the invocation itself
    failed: exception, crash, timeout), or INVALID (output that is not an envelope)."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    PENDING = "PENDING"
    ERROR = "ERROR"
    INVALID = "INVALID"


# What a handler's envelope may say (a tuple: the output may hold anything, hashable or not).
ENVELOPE_STATUSES = (OutcomeStatus.SUCCEEDED, OutcomeStatus.FAILED, OutcomeStatus.PENDING)


@dataclass(frozen=True)
class InvocationOutcome:
    """What an invocation came back with (``status``: ``OutcomeStatus``)."""

    status: str
    result: str | None = None
    error: dict[str, Any] | None = None
    has_result: bool = False
    has_error: bool = False

    @classmethod
    def from_envelope(cls, output: Any) -> InvocationOutcome:
        if not isinstance(output, dict) or output.get("Status") not in ENVELOPE_STATUSES:
            return cls(
                OutcomeStatus.INVALID,
                error={
                    "ErrorType": "InvalidParameterValueException",
                    "ErrorMessage": f"Invalid handler output: {str(output)[:500]}",
                },
            )
        err = output.get("Error")
        result = output.get("Result")
        if result is not None and (not isinstance(result, str) or "\x00" in result):
            # The store keeps a result verbatim as text, and PostgreSQL text cannot hold U+0000.
            return cls(
                OutcomeStatus.INVALID,
                error={
                    "ErrorType": "InvalidParameterValueException",
                    "ErrorMessage": "Invalid handler output: Result must be a string without NUL (U+0000) characters",
                },
            )
        return cls(
            OutcomeStatus(output["Status"]),
            result=result,
            error=err if isinstance(err, dict) else None,
            has_result="Result" in output and output.get("Result") not in (None, ""),
            has_error=err is not None,
        )


Listener = Callable[[set[str], list[int]], None]
CloseListener = Callable[[list[str]], None]


class StartClaimer(Protocol):
    """An engine in this process that takes the first invocation of the executions started
    here, in the transaction that starts them (``ControlPlane.start_claimer``)."""

    def reserve(self, execution_id: str, function: str) -> str | None:
        """The lease owner's name if a free invocation slot (of ``function``) is now held for
        this execution."""

    def release(self, execution_id: str, function: str) -> None:
        """Give back a reserved slot whose claim did not commit."""

    def run(self, inv: InvocationInput) -> None:
        """Run a committed claim."""
