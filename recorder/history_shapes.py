"""The shapes of ``GetDurableExecutionHistory`` events, checked against botocore's own model.

An imported or pulled history is rendered by the viewer and projected into the store, so
every field must have the type, length and form the API defines: a ``RetryDetails`` that is
a list, or a ``ScheduledEndTimestamp`` of ``"soon"``, would otherwise be accepted and break
the pages that show it. The model is botocore's service model for Lambda (the one boto3
and the AWS CLI parse responses with), so the rules are AWS's, not ours to keep in step.

The check walks the *model*, never the data's own nesting, so a hostile file cannot make it
recurse deeper than the API's shapes go. Unknown fields are refused: nothing the viewer
cannot explain enters the log.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any

import botocore.session
from botocore.model import Shape


class ShapeError(ValueError):
    """A field that does not fit its shape; ``field`` is its path, e.g. ``StepFailedDetails.Error``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem


@functools.cache
def event_shape() -> Shape:
    model = botocore.session.get_session().get_service_model("lambda")
    return model.operation_model("GetDurableExecutionHistory").output_shape.members["Events"].member


@functools.cache
def event_types() -> frozenset[str]:
    return frozenset(event_shape().members["EventType"].enum)


def check_event(event: Mapping[str, Any]) -> None:
    """Raise ShapeError naming the first field of ``event`` that does not fit the API."""
    _check(event, event_shape(), "")


def _check(value: Any, shape: Shape, path: str) -> None:
    kind = shape.type_name
    if kind == "structure":
        _structure(value, shape, path)
    elif kind == "list":
        if not isinstance(value, list):
            raise ShapeError(path, f"must be a list, not {_what(value)}")
        for i, item in enumerate(value):
            _check(item, shape.member, f"{path}[{i}]")
    elif kind == "string":
        _string(value, shape, path)
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ShapeError(path, f"must be a whole number, not {_what(value)}")
        low = shape.metadata.get("min")
        if low is not None and value < low:
            raise ShapeError(path, f"must be at least {low}, not {value}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise ShapeError(path, f"must be true or false, not {_what(value)}")
    elif kind == "timestamp":
        _timestamp(value, path)
    else:  # a type this API's events do not use
        raise ShapeError(path, f"has the unsupported type {kind}")


def _structure(value: Any, shape: Shape, path: str) -> None:
    if not isinstance(value, dict):
        raise ShapeError(path, f"must be an object, not {_what(value)}")
    members = shape.members
    unknown = [k for k in value if k not in members]
    if unknown:
        raise ShapeError(
            path,
            f"unexpected field {str(unknown[0])[:60]!r}"
            + (f" (expected one of {', '.join(sorted(members))})" if 0 < len(members) <= 8 else ""),
        )
    for name in shape.required_members:
        if name not in value:
            raise ShapeError(_join(path, name), "is required")
    for name, item in value.items():
        _check(item, members[name], _join(path, name))


def _string(value: Any, shape: Shape, path: str) -> None:
    if not isinstance(value, str):
        raise ShapeError(path, f"must be a string, not {_what(value)}")
    if "\x00" in value:  # JSON allows it; PostgreSQL text cannot hold it
        raise ShapeError(path, "holds NUL (U+0000) characters, which the store cannot keep")
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and len(value) < low:
        raise ShapeError(path, f"must be at least {low} character(s) long")
    if high is not None and len(value) > high:
        raise ShapeError(path, f"must be at most {high} characters long, not {len(value)}")
    if shape.enum and value not in shape.enum:
        raise ShapeError(path, f"{value[:60]!r} is not one of {', '.join(shape.enum)}")
    pattern = shape.metadata.get("pattern")
    if pattern and not _compiled(pattern).fullmatch(value):
        raise ShapeError(path, f"{value[:60]!r} is not of the form {pattern[:80]}")


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _timestamp(value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ShapeError(path, f"must be a number of seconds since 1970 or an ISO-8601 time, not {_what(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ShapeError(path, "must be a finite number of seconds")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _what(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"[:60]
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    return "an object"
