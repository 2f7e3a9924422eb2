"""Matching of execution histories, results and logs against requirement files.

Semantics of the requirement YAMLs (``aws-durable-execution-conformance-tests``):

* ``${NAME}`` as a whole value is a placeholder: the first occurrence binds it to
  the actual value, every later occurrence must see the same value. Names bound
  up front (``Variables``, e.g. ``${GEN_STR:8}`` generators) must match their
  generated value.
* ``${/regex/}`` as a whole value: ``re.search`` against ``str(actual)``.
* ``"*"``: any value, but the key must be present.
* ``{}``: don't care (the key must still be present in the enclosing object).
* strings containing ``${NAME}`` inside other text (``'"${INPUT_1}"'``) are
  compared literally after substituting the bound names.
* dicts: only the expected keys are checked; lists: same length, element-wise.
* expected events are matched with actual events by ``EventId``; actual events
  that are not listed are ignored.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass, field
from typing import Any

_WHOLE_REGEX = re.compile(r"^\$\{/(.+)/\}$", re.DOTALL)
_WHOLE_PLACEHOLDER = re.compile(r"^\$\{(.+)\}$", re.DOTALL)
_EMBEDDED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_GEN_STR = re.compile(r"^\$\{GEN_STR:(\d+)\}$")
_ALPHABET = string.ascii_lowercase + string.digits


@dataclass
class Bindings:
    """Placeholder values shared by input substitution, matching and callbacks."""

    values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_variables(cls, variables: dict[str, Any] | None) -> Bindings:
        out = cls()
        for name, spec in (variables or {}).items():
            if isinstance(spec, str):
                gen = _GEN_STR.match(spec)
                out.values[name] = "".join(secrets.choice(_ALPHABET) for _ in range(int(gen.group(1)))) if gen else spec
            else:
                out.values[name] = str(spec)
        return out

    def substitute(self, data: Any) -> Any:
        """Replace bound ``${NAME}`` references inside strings, recursively."""
        if isinstance(data, str):
            return _EMBEDDED.sub(
                lambda m: str(self.values[m.group(1)]) if m.group(1) in self.values else m.group(0), data
            )
        if isinstance(data, dict):
            return {k: self.substitute(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.substitute(v) for v in data]
        return data

    def copy(self) -> Bindings:
        return Bindings(dict(self.values))


def _regex_of(value: Any) -> re.Pattern[str] | None:
    if isinstance(value, str):
        m = _WHOLE_REGEX.match(value)
        if m:
            return re.compile(m.group(1))
    return None


def _placeholder_of(value: Any) -> str | None:
    if isinstance(value, str) and not _WHOLE_REGEX.match(value):
        m = _WHOLE_PLACEHOLDER.match(value)
        if m:
            return m.group(1)
    return None


class _ValueMatcher:
    def __init__(self, bindings: Bindings) -> None:
        self.bindings = bindings
        self.errors: list[str] = []

    def match(self, expected: Any, actual: Any, path: str) -> None:
        if isinstance(expected, dict) and not expected:
            return
        if expected == "*":
            return
        regex = _regex_of(expected)
        if regex is not None:
            if not regex.search(str(actual)):
                self.errors.append(f"{path}: {actual!r} does not match /{regex.pattern}/")
            return
        name = _placeholder_of(expected)
        if name is not None:
            if name in self.bindings.values:
                bound = self.bindings.values[name]
                if bound != actual:
                    self.errors.append(f"{path}: ${{{name}}} is bound to {bound!r}, got {actual!r}")
            else:
                self.bindings.values[name] = actual
            return
        if isinstance(expected, dict):
            if not isinstance(actual, dict):
                self.errors.append(f"{path}: expected an object, got {actual!r}")
                return
            for key, sub in expected.items():
                if key not in actual:
                    self.errors.append(f"{path}.{key}: missing")
                    continue
                self.match(sub, actual[key], f"{path}.{key}")
            return
        if isinstance(expected, list):
            if not isinstance(actual, list) or len(actual) != len(expected):
                self.errors.append(f"{path}: expected list {expected!r}, got {actual!r}")
                return
            for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
                self.match(e, a, f"{path}[{i}]")
            return
        resolved = self.bindings.substitute(expected)
        if resolved != actual:
            self.errors.append(f"{path}: expected {resolved!r}, got {actual!r}")


def match_history(expected: list[dict[str, Any]], actual: list[dict[str, Any]], bindings: Bindings) -> list[str]:
    """Match expected events against the actual history (by EventId).

    Placeholders are bound into ``bindings``. Returns a list of mismatch messages.
    """
    by_id = {e.get("EventId"): e for e in actual}
    vm = _ValueMatcher(bindings)
    for exp in expected:
        event_id = exp.get("EventId")
        if event_id is None:
            vm.errors.append(f"expected event without EventId: {exp!r}")
            continue
        act = by_id.get(event_id)
        if act is None:
            vm.errors.append(f"Event[{event_id}]: no such event (history has {len(actual)} events)")
            continue
        vm.match(exp, act, f"Event[{event_id}]")
    return vm.errors


def history_matches(expected: list[dict[str, Any]], actual: list[dict[str, Any]], bindings: Bindings) -> bool:
    """Non-binding probe: would ``match_history`` succeed? (bindings untouched)."""
    return not match_history(expected, actual, bindings.copy())


def check_result(
    expected: dict[str, Any] | None, status: str | None, result_text: str | None, bindings: Bindings
) -> list[str]:
    """Check ``ExpectedResult`` (status, then result of a SUCCEEDED execution)."""
    if not expected:
        return []
    want_status = expected.get("ExecutionStatus")
    if want_status and status != want_status:
        return [f"ExecutionStatus: expected {want_status!r}, got {status!r}"]
    if status != "SUCCEEDED" or "Result" not in expected:
        return []
    actual: Any = None
    if result_text is not None:
        try:
            actual = json.loads(result_text)
        except (TypeError, ValueError):
            actual = result_text
    want = bindings.substitute(expected.get("Result"))
    if want != actual:
        return [f"Result: expected {want!r}, got {actual!r}"]
    return []


# --- ExpectedLogs ------------------------------------------------------------


def _log_value_matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, str):
        text = str(actual).strip()
        if len(expected) >= 2 and expected.startswith("/") and expected.endswith("/"):
            return re.search(expected[1:-1], text) is not None
        return text == expected.strip()
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return float(expected) == float(actual)
    return str(expected) == str(actual)


def _log_hits(matcher: dict[str, Any], records: list[dict[str, Any]]) -> list[int]:
    return [
        i
        for i, rec in enumerate(records)
        if all(k in rec and _log_value_matches(v, rec[k]) for k, v in matcher.items())
    ]


def check_logs(expected_logs: list[dict[str, Any]], records: list[dict[str, Any]], bindings: Bindings) -> list[str]:
    """Validate ``ExpectedLogs`` against captured log records (in emission order).

    Each record is a flat field map; plain log lines expose ``message``.
    ``count`` / ``min_count`` / ``max_count`` are global; ``after`` / ``before``
    anchors require every match to come after / before every anchor match.
    """
    errors: list[str] = []
    for i, raw in enumerate(expected_logs):
        entry = bindings.substitute(raw)
        matcher = entry.get("match") or {}
        label = f"ExpectedLogs[{i}] {matcher}"
        hits = _log_hits(matcher, records)
        count, lo, hi = entry.get("count"), entry.get("min_count"), entry.get("max_count")
        if count is not None:
            if len(hits) != count:
                errors.append(f"{label}: expected {count} record(s), got {len(hits)}")
        else:
            if lo is None and hi is None:
                lo = 1
            if lo is not None and len(hits) < lo:
                errors.append(f"{label}: expected at least {lo} record(s), got {len(hits)}")
            if hi is not None and len(hits) > hi:
                errors.append(f"{label}: expected at most {hi} record(s), got {len(hits)}")
        for direction in ("after", "before"):
            anchors = entry.get(direction) or []
            if isinstance(anchors, dict):
                anchors = [anchors]
            for anchor in anchors:
                anchor_hits = _log_hits(anchor, records)
                if not anchor_hits:
                    errors.append(f"{label}: {direction} anchor {anchor} matched no record")
                    continue
                if not hits:
                    continue
                if direction == "after" and hits[0] < anchor_hits[-1]:
                    errors.append(f"{label}: not all records come after {anchor}")
                if direction == "before" and hits[-1] > anchor_hits[0]:
                    errors.append(f"{label}: not all records come before {anchor}")
    return errors


__all__ = [
    "Bindings",
    "check_logs",
    "check_result",
    "history_matches",
    "match_history",
]
