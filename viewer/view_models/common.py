"""What every view model shares: the error for bad input, durations, plurals, the error
shape of executions and operations, and reading query strings."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from viewer.values import Value


class ViewError(Exception):
    """Bad input from the user (400) or something that is not there (404)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def to_dict(obj: Any) -> Any:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else obj


def format_duration(ms: int | None) -> str:
    """A duration as people read it (the list, the execution page, the timeline)."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    if ms < 3_600_000:
        return f"{ms // 60_000} min {ms % 60_000 // 1000} s"
    if ms < 86_400_000:
        return f"{ms // 3_600_000} h {ms % 3_600_000 // 60_000} min"
    return f"{ms // 86_400_000} d {ms % 86_400_000 // 3_600_000} h"


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """``1 line``, ``2 lines``, ``1 child``, ``3 children``."""
    return f"{n:,} {singular if n == 1 else (plural_form or singular + 's')}"


def now_ms() -> int:
    return int(time.time() * 1000)


def short_type(error_type: str | None) -> str | None:
    """``StepError`` for ``aws_durable_execution_sdk_python.exceptions.StepError``."""
    return error_type.rsplit(".", 1)[-1] if error_type else error_type


@dataclass(frozen=True)
class ErrorInfo:
    """An error as the SDK and the history hold it. ``stack_trace`` only when the error
    carried one (the SDK sends none for ordinary exceptions: their tracebacks are in the
    invocation's log, see ``viewer.operation_logs``)."""

    type: str | None
    message: str | None
    stack_trace: tuple[str, ...] = ()
    data: Value | None = None

    @classmethod
    def of(cls, raw: Any) -> ErrorInfo | None:
        if not raw:
            return None
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                return cls(None, raw)
        if isinstance(raw, dict) and "Payload" in raw and isinstance(raw["Payload"], dict):
            raw = raw["Payload"]  # history shape: {"Payload": {...}, "Truncated": ...}
        if not isinstance(raw, dict):
            return cls(None, str(raw))
        trace = raw.get("StackTrace")
        if isinstance(trace, str):
            lines = tuple(trace.splitlines())
        elif isinstance(trace, list):
            lines = tuple(str(t) for t in trace)
        else:
            lines = ()
        return cls(
            raw.get("ErrorType"),
            raw.get("ErrorMessage"),
            lines if any(s.strip() for s in lines) else (),
            Value.of(raw.get("ErrorData")),
        )

    @property
    def summary(self) -> str:
        return ": ".join(p for p in (self.type, self.message) if p) or "error"

    @property
    def short(self) -> str:
        """The type's last name and the message: what fits a table cell."""
        return ": ".join(p for p in (short_type(self.type), self.message) if p) or "error"


def arg_list(args: Any) -> Callable[[str], list[str]]:
    """``args.getlist`` for a werkzeug MultiDict, or the same on a plain dict."""
    if hasattr(args, "getlist"):
        return args.getlist
    return lambda k: [args[k]] if k in args else []


def split_values(args: Any, key: str, transform: Callable[[str], str] = str.strip) -> tuple[str, ...]:
    """Every value of ``key`` (repeated, or comma-separated), cleaned, sorted, unique."""
    return tuple(sorted({transform(s) for v in arg_list(args)(key) for s in v.split(",") if s.strip()}))


def parse_instant(text: str, what: str, end_of_day: bool = False) -> int:
    """Epoch ms from ``2026-11-23``, ``2026-11-23T19:30[:ss]`` (UTC unless an offset is
    given) or raw epoch milliseconds."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        if len(text) == 10:
            d = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
            if end_of_day:
                d += dt.timedelta(days=1, milliseconds=-1)
        else:
            d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if d.tzinfo is None:
                d = d.replace(tzinfo=dt.UTC)
    except ValueError:
        raise ViewError(f"{what}: {text[:40]!r} is not a date (use 2026-11-23 or 2026-11-23T19:30)") from None
    return int(d.timestamp() * 1000)


def int_arg(args: Any, name: str, default: int | None, lo: int, hi: int) -> int | None:
    """A whole-number query parameter within [lo, hi], or ``default`` when absent."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ViewError(f"{name} must be a whole number, got {str(raw)[:50]!r}") from None
    if not lo <= value <= hi:
        raise ViewError(f"{name} must be between {lo} and {hi}")
    return value


def validate_callback_payload(text: str) -> str:
    """A callback result must be JSON (what the SDK's wait_for_callback decodes)."""
    text = text.strip()
    if not text:
        return ""
    try:
        json.loads(text)
    except ValueError as exc:
        raise ViewError(f"Payload is not valid JSON: {exc}") from None
    return text
