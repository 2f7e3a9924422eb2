"""The replay check: will this handler, as it is now, still replay a recorded history?

It runs the handler against the history with the SDK's own replay, in a fresh interpreter
(``recorder.replay_child``), where no completed step body runs again and a step the
history lacks is never executed: reaching new work ends the check. Then it says where the
code and the history first part ways, if they do:

* ``mismatch``: another operation type, subtype or name (or parent) at the same
  operation id: the SDK's own non-determinism check, read back from its error;
* ``nondeterminism``: any other non-determinism error the SDK raised;
* ``unreached``: an operation the history has that the code, running to its end, never
  reaches;
* ``outcome``: the replay ends SUCCEEDED where the history FAILED, or the other way round.

Flask-free: the CLI and the viewer both call ``check``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder.replay_history import (
    RecordedHistory,
    RecordedOperation,
    SourceError,
    from_store,
    sdk_operation_id,
)
from recorder.store.db import Database
from recorder.transfer import ExportFilter, matching_arns

DETERMINISTIC, DIVERGED, ERROR = "deterministic", "diverged", "error"
EXIT_CODES = {DETERMINISTIC: 0, DIVERGED: 1, ERROR: 2}
DEFAULT_TIMEOUT = 60.0
_PROJECT_ROOT = str(Path(__file__).resolve().parents[1])
_MISMATCH = re.compile(r"(type|subtype|name|parent_id) checkpoint=('[^']*'|None) current=('[^']*'|None)")
_AT_ID = re.compile(r"id='([0-9a-zA-Z_-]{1,64})'")
_NON_DETERMINISTIC = "NonDeterministicExecutionError"


@dataclass(frozen=True)
class Place:
    """An operation as the reader finds it: its position among its parent's operations
    (dotted from the root, ``2.1`` = the first operation inside the second), its parent."""

    op_id: str
    path: str
    parent_id: str | None
    parent_name: str | None

    @property
    def parent_label(self) -> str:
        if not self.parent_id:
            return "the handler"
        return repr(self.parent_name) if self.parent_name else self.parent_id[:12]


@dataclass(frozen=True)
class Divergence:
    kind: str  # mismatch | nondeterminism | unreached | outcome
    place: Place | None
    then: str  # what the history has there
    now: str  # what the code does there
    message: str  # the SDK's own words, when it raised

    def describe(self) -> str:
        if self.place is None:
            return f"{self.kind}: then {self.then}; now {self.now}"
        return (f"{self.kind} at position {self.place.path} under {self.place.parent_label}: "
                f"then {self.then}; now {self.now}")


@dataclass(frozen=True)
class ReplayReport:
    arn: str
    result: str  # deterministic | diverged | error
    replayed: int  # recorded operations the code replayed (or replayed under a context it replayed)
    total: int  # recorded operations (the execution itself not counted)
    divergence: Divergence | None = None
    stopped_at: str | None = None  # the new work that ended the check, if it did
    replay_status: str | None = None  # how the handler's replay ended: SUCCEEDED, FAILED, PENDING
    error: str | None = None  # why the check could not run

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.result]

    @property
    def summary(self) -> str:
        if self.result == ERROR:
            return f"could not run: {self.error}"
        if self.result == DIVERGED:
            assert self.divergence is not None
            return f"diverged: {self.divergence.describe()}"
        return f"deterministic: {self.replayed} operations replayed"

    def lines(self) -> list[str]:
        out = [self.summary]
        if self.divergence is not None and self.divergence.message:
            out.append(f"  the SDK said: {self.divergence.message}")
        if self.stopped_at:
            out.append(f"  stopped at {self.stopped_at}")
        return out

    def to_json(self) -> dict[str, Any]:
        d = self.divergence
        return {
            "durableExecutionArn": self.arn, "result": self.result, "exitCode": self.exit_code,
            "summary": self.summary, "replayed": self.replayed, "total": self.total,
            "stoppedAt": self.stopped_at, "replayStatus": self.replay_status, "error": self.error,
            "divergence": None if d is None else {
                "kind": d.kind, "then": d.then, "now": d.now, "message": d.message,
                "operationId": d.place.op_id if d.place else None, "position": d.place.path if d.place else None,
                "parentId": d.place.parent_id if d.place else None,
                "parentName": d.place.parent_name if d.place else None},
        }


def could_not_run(arn: str, why: str) -> ReplayReport:
    return ReplayReport(arn, ERROR, 0, 0, error=why)


# --- running --------------------------------------------------------------------------------


def check(history: RecordedHistory, handler: str, code_dir: str | None = None,
          timeout: float = DEFAULT_TIMEOUT) -> ReplayReport:
    """Replay ``history`` with ``handler`` (``pkg.module:function``) and say how it went."""
    job = {"handler": handler, "codeDir": str(Path(code_dir).resolve()) if code_dir else None, "arn": history.arn,
           "operations": [op.wire for op in history.operations], "timeout": timeout}
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PROJECT_ROOT, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.run([sys.executable, "-m", "recorder.replay_child"], input=json.dumps(job), check=False,
                              capture_output=True, text=True, env=env, timeout=timeout + 30,
                              cwd=code_dir or None)
    except subprocess.TimeoutExpired:
        return could_not_run(history.arn, f"the replay did not end within {timeout:.0f} s")
    try:
        raw = json.loads(proc.stdout)
    except ValueError:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        return could_not_run(history.arn, f"the replay process failed: {tail[0][:300]}")
    return judge(history, raw)


def judge(history: RecordedHistory, raw: dict[str, Any]) -> ReplayReport:
    """The report from what the replay process observed."""
    ops = [op for op in history.operations if op.type != "EXECUTION"]
    by_id = history.by_id
    if raw.get("outcome") == "error":
        return ReplayReport(history.arn, ERROR, 0, len(ops), error=raw.get("message"))
    reached = set(raw.get("reached", ())) & set(by_id)
    covered = _covered(ops, reached, set(raw.get("entered", ())), by_id)
    output = raw.get("output")
    if raw.get("raised") or (output is not None and not _is_envelope(output)):
        why = raw.get("raised") or "its return value is not a durable invocation result"
        return ReplayReport(history.arn, ERROR, 0, len(ops),
                            error=f"the handler is not a durable handler (wrapped with @durable_execution): {why}")
    new_work = raw.get("newWork")
    status = output.get("Status") if isinstance(output, dict) else None
    error = (output or {}).get("Error") or {}
    report = ReplayReport(history.arn, DETERMINISTIC, len(covered), len(ops), replay_status=status,
                          stopped_at=_describe_new_work(history, new_work) if new_work else None)
    if status == "FAILED" and str(error.get("ErrorType", "")).endswith(_NON_DETERMINISTIC):
        return _diverged(report, _from_sdk_error(history, str(error.get("ErrorMessage", ""))))
    if new_work is not None or status not in ("SUCCEEDED", "FAILED"):
        return report  # ended at new work, or suspended where the history waits: nothing more is known
    expected = [op for op in ops if op.parent_id is None or op.parent_id == history.operations[0].op_id
                or op.parent_id in raw.get("entered", ())]
    for op in expected:
        if op.op_id not in covered:
            return _diverged(report, Divergence("unreached", place_of(history, op.op_id), _label(op),
                                                "never reached: the code ends before it", ""))
    if history.status in ("SUCCEEDED", "FAILED") and status != history.status:
        now = f"ends {status}" + (f" ({error.get('ErrorType')}: {error.get('ErrorMessage')})" if error else "")
        return _diverged(report, Divergence("outcome", None, f"the execution ended {history.status}", now, ""))
    return report


def _diverged(report: ReplayReport, d: Divergence) -> ReplayReport:
    return ReplayReport(report.arn, DIVERGED, report.replayed, report.total, d, report.stopped_at,
                        report.replay_status)


def _is_envelope(output: Any) -> bool:
    return isinstance(output, dict) and output.get("Status") in ("SUCCEEDED", "FAILED", "PENDING")


def _covered(ops: list[RecordedOperation], reached: set[str], entered: set[str],
             by_id: dict[str, RecordedOperation]) -> set[str]:
    """Reached operations, and those inside a closed context the code reached and the SDK
    did not re-enter (its result stands for them)."""
    covered = set(reached)
    for op in ops:
        parent = by_id.get(op.parent_id or "")
        while parent is not None and parent.type != "EXECUTION":
            if parent.op_id in reached and parent.op_id not in entered:
                covered.add(op.op_id)
                break
            parent = by_id.get(parent.parent_id or "")
    return covered


def _label(op: RecordedOperation | None, op_type: str | None = None, name: str | None = None) -> str:
    if op is not None:
        op_type, name = op.type, op.name
    return f"{op_type} {name!r}" if name else f"{op_type} (unnamed)"


def place_of(history: RecordedHistory, op_id: str, parent_id: str | None = None) -> Place:
    by_id = history.by_id
    op = by_id.get(op_id)
    if op is not None:
        parent_id = op.parent_id
    root = history.operations[0].op_id if history.operations else None
    if parent_id == root:
        parent_id = None
    parts = [_position(history, op_id, parent_id)]
    up = by_id.get(parent_id or "")
    while up is not None and up.type != "EXECUTION":
        parts.append(_position(history, up.op_id, up.parent_id if up.parent_id != root else None))
        up = by_id.get(up.parent_id or "")
    parent = by_id.get(parent_id or "")
    return Place(op_id, ".".join(reversed(parts)), parent_id, parent.name if parent else None)


def _position(history: RecordedHistory, op_id: str, parent_id: str | None) -> str:
    op = history.by_id.get(op_id)
    if op is not None and op.position is not None:
        return str(op.position)
    siblings = sum(1 for o in history.operations if o.parent_id == parent_id)
    for n in range(1, 2 * siblings + 1024):
        if sdk_operation_id(parent_id, n) == op_id:
            return str(n)
    return "?"


def _from_sdk_error(history: RecordedHistory, message: str) -> Divergence:
    at = _AT_ID.search(message)
    op = history.by_id.get(at.group(1)) if at else None
    mismatches = {m.group(1): (m.group(2), m.group(3)) for m in _MISMATCH.finditer(message)}
    if op is None or not mismatches:
        return Divergence("nondeterminism", place_of(history, op.op_id) if op else None,
                          _label(op) if op else "the recorded operations", "the SDK refused to replay them", message)

    def now(field: str, then: str | None) -> str | None:
        if field not in mismatches:
            return then
        value = mismatches[field][1]
        return None if value == "None" else value.strip("'")

    now_type = now("type", op.type)
    return Divergence("mismatch", place_of(history, op.op_id), _label(op),
                      _label(None, now_type, now("name", op.name)), message)


def _describe_new_work(history: RecordedHistory, new: dict[str, Any]) -> str:
    place = place_of(history, new["id"], new.get("parentId"))
    what = _label(None, new.get("type"), new.get("name"))
    where = f"position {place.path} under {place.parent_label}"
    if new["id"] in history.by_id:
        return f"{what} at {where}, which the history has not completed (not run)"
    return f"{what} at {where}, which the history does not have (not run)"


def overall_exit_code(reports: list[ReplayReport]) -> int:
    """1 if any history diverged, else 2 if any could not be checked, else 0."""
    results = {r.result for r in reports}
    if DIVERGED in results:
        return EXIT_CODES[DIVERGED]
    return EXIT_CODES[ERROR] if ERROR in results or not reports else EXIT_CODES[DETERMINISTIC]


def check_function(db: Database, function: str, handler: str, code_dir: str | None = None,
                   since_ms: int | None = None, status: str | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> list[ReplayReport]:
    """Check every stored execution of ``function`` (oldest first) that the filters keep."""
    reports = []
    for arn in matching_arns(db, ExportFilter(function, status, since_ms)):
        try:
            history = from_store(db, arn)
        except SourceError as exc:
            reports.append(could_not_run(arn, str(exc)))
            continue
        reports.append(check(history, handler, code_dir, timeout))
    return reports
