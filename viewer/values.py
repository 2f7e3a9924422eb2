"""Payloads as people read them: decoded from the SDK's wire encoding, pretty, labelled.

Step, child-context and chained-invoke payloads are written by the SDK's serdes
(``aws_durable_execution_sdk_python.serdes``): plain JSON for primitives, otherwise an
envelope such as ``{"t":"m","v":{"offer_id":{"t":"s","v":"offer-1"}}}``. A ``Value``
holds the decoded value as indented plain JSON, with every extended type (datetime,
decimal, uuid, bytes, tuple, ...) labelled where it appears, and the wire text beside it
for the page's "raw" toggle and the JSON twin. Decoding goes through the SDK's own
serdes, so it decodes exactly what a handler would get back on replay.

Texts are cut at ``PREVIEW_CHARS`` (the whole payload is one click away); encoding stops
at the cut, so a megabyte result costs what its preview shows.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aws_durable_execution_sdk_python.concurrency.models import BatchResult
from aws_durable_execution_sdk_python.exceptions import SerDesError
from aws_durable_execution_sdk_python.serdes import TYPE_TOKEN, VALUE_TOKEN, ExtendedTypeSerDes, TypeTag

PREVIEW_CHARS = 4000
_SERDES = ExtendedTypeSerDes()
_TAGS = frozenset(t.value for t in TypeTag)
_COMPACT = json.JSONEncoder(ensure_ascii=False)
_PRETTY = json.JSONEncoder(indent=2, ensure_ascii=False)


@dataclass(frozen=True)
class TypedSpot:
    """An extended-type value inside a decoded payload: where (a JSONPath-like ``path``,
    and ``offset``, the character after it in ``Value.text``) and what it was."""

    path: str
    type: str
    offset: int


@dataclass(frozen=True)
class Value:
    """A payload for display. ``text`` is the decoded value as indented JSON (or the text
    itself when it is not JSON); ``raw`` the wire text when it differs from ``text`` (the
    SDK's envelope); ``encoding`` says which: ``json``, ``sdk`` (decoded with the SDK's
    serdes) or ``text``. ``size`` counts the stored characters; ``truncated`` says the
    preview was cut."""

    text: str
    is_json: bool
    size: int
    truncated: bool
    encoding: str = "json"
    raw: str | None = None
    types: tuple[TypedSpot, ...] = ()

    @classmethod
    def of(cls, stored: Any, limit: int = PREVIEW_CHARS) -> Value | None:
        if stored is None:
            return None
        if not isinstance(stored, str):
            stored = json.dumps(stored)
        try:
            value = json.loads(stored)
        except ValueError:
            return cls(stored[:limit], False, len(stored), len(stored) > limit, "text")
        if _is_envelope(value):
            try:
                decoded = _SERDES.deserialize(stored)
            except (SerDesError, ValueError, TypeError, KeyError, ArithmeticError):
                decoded = _NOT_DECODED
            if decoded is not _NOT_DECODED:
                writer = _Writer(limit)
                writer.write(decoded, 0, "$")
                return cls(writer.text(), True, len(stored), writer.cut, "sdk", stored[:limit], tuple(writer.spots))
        text, cut = pretty_head(value, limit)
        return cls(text, True, len(stored), cut)

    @property
    def segments(self) -> Iterator[tuple[str, str | None]]:
        """(text, type label or None) pieces of ``text``: the page writes a label after
        each extended value."""
        start = 0
        for spot in self.types:
            yield self.text[start : spot.offset], spot.type
            start = spot.offset
        yield self.text[start:], None

    @property
    def decoded(self) -> bool:
        return self.encoding == "sdk"


_NOT_DECODED = object()


def _is_envelope(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 2
        and TYPE_TOKEN in value
        and VALUE_TOKEN in value
        and value[TYPE_TOKEN] in _TAGS
    )


def pretty_head(value: Any, limit: int) -> tuple[str, bool]:
    """``value`` as indented JSON, cut at ``limit`` characters, and whether it was cut.
    Scalars (most step results) go through the C encoder: indenting changes only containers."""
    if not isinstance(value, (dict, list)):
        text = _COMPACT.encode(value)
        return text[:limit], len(text) > limit
    parts, size = [], 0
    for chunk in _PRETTY.iterencode(value):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            return "".join(parts)[:limit], True
    return "".join(parts), False


class _Cut(Exception):
    pass


class _Writer:
    """Indented JSON of a decoded value, extended types written as JSON with their
    positions recorded, stopping at ``limit`` characters."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.cut = False
        self.spots: list[TypedSpot] = []

    def text(self) -> str:
        return "".join(self.parts)[: self.limit]

    def put(self, text: str) -> None:
        if self.cut:
            return
        self.parts.append(text)
        self.size += len(text)
        if self.size > self.limit:
            self.cut = True
            raise _Cut

    def write(self, value: Any, depth: int, path: str) -> None:
        try:
            self._value(value, depth, path)
        except _Cut:
            self.spots = [s for s in self.spots if s.offset <= self.limit]

    def _value(self, value: Any, depth: int, path: str) -> None:
        plain, label = _plain(value)
        if label is None and not isinstance(plain, (dict, list)):
            self.put(_COMPACT.encode(plain))
            return
        if isinstance(plain, dict):
            self._container(list(plain.items()), "{", "}", depth, path, keyed=True)
        elif isinstance(plain, list):
            self._container(list(enumerate(plain)), "[", "]", depth, path, keyed=False)
        else:
            self.put(plain if isinstance(plain, _Literal) else _COMPACT.encode(plain))
        if label is not None:
            self.spots.append(TypedSpot(path, label, self.size))

    def _container(
        self, items: list[tuple[Any, Any]], open_: str, close: str, depth: int, path: str, keyed: bool
    ) -> None:
        if not items:
            self.put(open_ + close)
            return
        self.put(open_)
        pad = "\n" + "  " * (depth + 1)
        for i, (key, item) in enumerate(items):
            self.put(("," if i else "") + pad)
            if keyed:
                self.put(_COMPACT.encode(str(key)) + ": ")
                child = f"{path}.{key}" if str(key).isidentifier() else f"{path}[{_COMPACT.encode(str(key))}]"
            else:
                child = f"{path}[{key}]"
            self._value(item, depth + 1, child)
        self.put("\n" + "  " * depth + close)


class _Literal(str):
    """Text written as is (a decimal's digits), not as a JSON string."""


def _plain(value: Any) -> tuple[Any, str | None]:
    """A decoded Python value as JSON-able data, and the label of its extended type."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value, None
    if isinstance(value, float):
        return (value, None) if math.isfinite(value) else (str(value), "float")
    if isinstance(value, dt.datetime):
        return value.isoformat(), "datetime"
    if isinstance(value, dt.date):
        return value.isoformat(), "date"
    if isinstance(value, Decimal):
        return (_Literal(str(value)), "decimal") if value.is_finite() else (str(value), "decimal")
    if isinstance(value, uuid.UUID):
        return str(value), "uuid"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii"), "bytes, base64"
    if isinstance(value, tuple):
        return list(value), "tuple"
    if isinstance(value, BatchResult):
        return value.to_dict(), "BatchResult"
    if isinstance(value, dict):
        return value, None
    if isinstance(value, list):
        return value, None
    return str(value), type(value).__name__


def to_json(value: Any) -> Any:
    """A decoded value as plain JSON data (extended types as their text), for the JSON twin."""
    plain, _ = _plain(value)
    if isinstance(plain, dict):
        return {str(k): to_json(v) for k, v in plain.items()}
    if isinstance(plain, list):
        return [to_json(v) for v in plain]
    return str(plain) if isinstance(plain, _Literal) else plain


def decode_full(stored: str) -> str:
    """The whole payload decoded (indented JSON, extended types as text), for downloads;
    the stored text itself when it is not the SDK's envelope."""
    try:
        value = json.loads(stored)
    except ValueError:
        return stored
    if not _is_envelope(value):
        return stored
    try:
        return json.dumps(to_json(_SERDES.deserialize(stored)), indent=2, ensure_ascii=False)
    except (SerDesError, ValueError, TypeError, KeyError, ArithmeticError):
        return stored
