"""Runs one requirement file against a backend and reports mismatches.

A *backend* is anything with the small interface of :class:`Backend` below.
:class:`DurascopeBackend` wraps ``recorder.api.Durascope``;
:class:`ReferenceBackend` wraps the official local test backend
(``aws-durable-execution-sdk-python-testing``) and is only used to tell
handler mistakes from engine discrepancies while developing.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
HANDLERS_DIR = HERE / "handlers"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if str(HANDLERS_DIR) not in sys.path:
    sys.path.insert(0, str(HANDLERS_DIR))

import dconf_common  # noqa: E402 - after sys.path gains the handlers' and this directory
from matcher import Bindings, check_logs, check_result, history_matches, match_history  # noqa: E402 - after sys.path gains this directory
from requirements import Requirement  # noqa: E402 - after sys.path gains the handlers' and this directory

from recorder.history_shapes import check_event  # noqa: E402 - after sys.path gains the handlers' and this directory

TERMINAL_EVENTS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionStopped": "STOPPED",
}

SUITE_MODULES = {
    "step": "dconf_step",
    "wait": "dconf_wait",
    "child": "dconf_child",
    "callback": "dconf_callback",
    "invoke": "dconf_invoke",
    "wait_for_condition": "dconf_wfcond",
    "wait_for_callback": "dconf_wfc",
    "parallel": "dconf_parallel",
    "map": "dconf_map",
    "plugin": "dconf_plugin",
}

POLL_SECONDS = 0.25
NO_PROGRESS_SECONDS = 60.0
EXECUTION_TIMEOUT = 300


def function_name(req: Requirement) -> str:
    return f"conf-{req.suite.replace('_', '-')}-{req.req_id}"


def handler_target(req: Requirement) -> str:
    return f"{SUITE_MODULES[req.suite]}:h_{req.req_id.replace('-', '_')}"


def invoke_targets() -> dict[str, str]:
    import dconf_invoke

    return dict(dconf_invoke.TARGETS)


# --- backends ----------------------------------------------------------------


class Backend(Protocol):
    name: str

    def register(self, fn_name: str, target: str) -> None: ...
    def start(self, fn_name: str, payload: str | None) -> str: ...
    def history(self, arn: str) -> list[dict[str, Any]]: ...
    def outcome(self, arn: str) -> tuple[str | None, str | None, Any]: ...
    def callback_success(self, arn: str, callback_id: str, payload: bytes | None) -> None: ...
    def callback_failure(self, arn: str, callback_id: str, error: dict[str, Any]) -> None: ...
    def callback_heartbeat(self, arn: str, callback_id: str) -> None: ...
    def stop(self, arn: str) -> None: ...


def _plain(value: Any) -> Any:
    """Normalise an API object/enum to plain JSON-ish values."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "value") and not isinstance(value, dict):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


class DurascopeBackend:
    """Adapter over ``recorder.api.Durascope``."""

    def __init__(self, ds: Any, label: str) -> None:
        self.ds = ds
        self.name = label

    def register(self, fn_name: str, target: str) -> None:
        self.ds.register_function(fn_name, target, code_dir=str(HANDLERS_DIR), execution_timeout=EXECUTION_TIMEOUT)

    def start(self, fn_name: str, payload: str | None) -> str:
        return self.ds.start(fn_name, payload=payload)

    def history(self, arn: str) -> list[dict[str, Any]]:
        events = self.ds.history(arn)
        if isinstance(events, dict):
            events = events.get("Events", [])
        for event in events:  # what we record always fits the API's shapes, so it re-imports
            check_event(event)
        return list(events)

    def outcome(self, arn: str) -> tuple[str | None, str | None, Any]:
        ex = self.ds.wait(arn, timeout=30)
        return _plain(getattr(ex, "status", None)), getattr(ex, "result", None), getattr(ex, "error", None)

    def callback_success(self, arn: str, callback_id: str, payload: bytes | None) -> None:
        self.ds.callback_success(callback_id, payload if payload is not None else b"")

    def callback_failure(self, arn: str, callback_id: str, error: dict[str, Any]) -> None:
        self.ds.callback_failure(callback_id, error)

    def callback_heartbeat(self, arn: str, callback_id: str) -> None:
        self.ds.callback_heartbeat(callback_id)

    def stop(self, arn: str) -> None:
        self.ds.stop(arn)


class ReferenceBackend:
    """Adapter over the official in-memory test backend (development aid)."""

    name = "reference"

    def __init__(self) -> None:
        self._targets: dict[str, str] = {}
        self._runners: dict[str, Any] = {}

    @staticmethod
    def _load(target: str) -> Callable:
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)

    def register(self, fn_name: str, target: str) -> None:
        self._targets[fn_name] = target

    def start(self, fn_name: str, payload: str | None) -> str:
        from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

        runner = DurableFunctionTestRunner(
            handler=self._load(self._targets[fn_name]), poll_interval=0.1, skip_time=False
        )
        for name, target in invoke_targets().items():
            runner.register_durable_function(name, self._load(target))
        arn = runner.run_async(
            input=payload,
            execution_timeout=EXECUTION_TIMEOUT,
            function_name=fn_name,
            execution_name=uuid.uuid4().hex,
        )
        self._runners[arn] = runner
        return arn

    def history(self, arn: str) -> list[dict[str, Any]]:
        resp = self._runners[arn].get_execution_history(arn, include_execution_data=True)
        events = resp.to_dict()["Events"]
        for e in events:
            # Known gap of the test backend (docs/protocol.md#history-events): it drops these details.
            if e.get("EventType") == "InvocationCompleted":
                e.setdefault("InvocationCompletedDetails", {})
        return events

    def outcome(self, arn: str) -> tuple[str | None, str | None, Any]:
        res = self._runners[arn].wait_for_result(arn, timeout=30)
        status = _plain(res.execution_status) or _plain(res.status)
        return status, res.result, (res.error.to_dict() if res.error else None)

    def callback_success(self, arn: str, callback_id: str, payload: bytes | None) -> None:
        self._runners[arn]._executor.send_callback_success(callback_id=callback_id, result=payload)

    def callback_failure(self, arn: str, callback_id: str, error: dict[str, Any]) -> None:
        from aws_durable_execution_sdk_python.lambda_service import ErrorObject

        self._runners[arn]._executor.send_callback_failure(
            callback_id=callback_id, error=ErrorObject.from_dict(error) if error else None
        )

    def callback_heartbeat(self, arn: str, callback_id: str) -> None:
        self._runners[arn]._executor.send_callback_heartbeat(callback_id=callback_id)

    def stop(self, arn: str) -> None:
        self._runners[arn]._executor.stop_execution(arn)

    def close(self) -> None:
        for runner in self._runners.values():
            try:
                runner.close()
            except Exception:  # noqa: BLE001 - cleanup only
                pass


# --- the driver ----------------------------------------------------------------


@dataclass
class Outcome:
    key: str
    backend: str
    arn: str | None = None
    errors: list[str] = field(default_factory=list)
    status: str | None = None
    result: str | None = None
    error: Any = None
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.errors

    def report(self) -> str:
        lines = [f"{self.key} on {self.backend}: {len(self.errors)} mismatch(es) in {self.seconds:.1f}s"]
        lines += [f"  - {e}" for e in self.errors[:40]]
        lines.append(f"  status={self.status} result={(self.result or '')[:200]!r} error={self.error!r}")
        lines.append("  actual history:")
        lines += [f"    {render_event(e)}" for e in self.events[:80]]
        return "\n".join(lines)


def render_event(e: dict[str, Any]) -> str:
    skip = {"EventId", "EventType", "SubType", "Name", "Id", "ParentId", "EventTimestamp"}
    details = {k: v for k, v in e.items() if k not in skip}
    text = json.dumps(details, default=str)
    if len(text) > 220:
        text = text[:220] + "..."
    parts = [str(e.get("EventId")), str(e.get("EventType"))]
    for k in ("SubType", "Name", "Id", "ParentId"):
        if e.get(k) is not None:
            parts.append(f"{k}={e[k]}")
    return " ".join(parts) + " " + text


def _terminal_status(events: list[dict[str, Any]]) -> str | None:
    for e in reversed(events):
        status = TERMINAL_EVENTS.get(e.get("EventType", ""))
        if status:
            return status
    return None


def _action_matches(action: dict[str, Any], callback_name: str, bindings: Bindings) -> bool:
    import re

    wanted = str(bindings.substitute(action.get("CallbackName", "")))
    if wanted in ("*", callback_name):
        return True
    m = re.match(r"^\$\{/(.+)/\}$", wanted)
    return bool(m and re.search(m.group(1), callback_name or ""))


def _send(backend: Backend, arn: str, callback_id: str, action: dict[str, Any], bindings: Bindings) -> None:
    op = str(action.get("Operation", "")).lower()
    payload = bindings.substitute(action.get("Payload"))
    if op == "success":
        backend.callback_success(arn, callback_id, None if payload is None else json.dumps(payload).encode("utf-8"))
    elif op == "failure":
        error = {
            k: payload[k] for k in ("ErrorType", "ErrorMessage", "ErrorData", "StackTrace") if k in (payload or {})
        }
        backend.callback_failure(arn, callback_id, error)
    elif op == "heartbeat":
        backend.callback_heartbeat(arn, callback_id)
    else:
        msg = f"unknown callback operation {op!r}"
        raise ValueError(msg)


def run_requirement(
    backend: Backend,
    req: Requirement,
    log_dir: str | None,
    deadline_seconds: float = 240.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Start the requirement's handler, drive callbacks, wait for the end, match."""
    started = time.monotonic()
    out = Outcome(key=req.key, backend=backend.name)
    bindings = Bindings.from_variables(req.variables)
    payload = json.dumps(bindings.substitute(req.input))
    expected = req.expected_history
    history_only = req.expected_result is None

    arn = backend.start(function_name(req), payload)
    out.arn = arn

    actions = req.callback_actions
    used: set[int] = set()
    handled: set[str] = set()
    last_count, last_progress = -1, time.monotonic()
    deadline = started + deadline_seconds
    events: list[dict[str, Any]] = []
    matched_early = False
    while True:
        events = backend.history(arn)
        if _terminal_status(events):
            break
        now = time.monotonic()
        if len(events) != last_count:
            last_count, last_progress = len(events), now
        elif now - last_progress > NO_PROGRESS_SECONDS:
            out.errors.append(f"no new history events for {NO_PROGRESS_SECONDS:.0f}s")
            break
        if now > deadline:
            out.errors.append(f"execution not finished after {deadline_seconds:.0f}s")
            break
        for ev in events:
            if ev.get("EventType") != "CallbackStarted":
                continue
            cb_id = (ev.get("CallbackStartedDetails") or {}).get("CallbackId")
            if not cb_id or cb_id in handled:
                continue
            idx = next(
                (
                    i
                    for i, a in enumerate(actions)
                    if i not in used and _action_matches(a, ev.get("Name", ""), bindings)
                ),
                None,
            )
            if idx is None:
                handled.add(cb_id)
                if actions:
                    out.errors.append(f"no CallbackAction for callback {ev.get('Name')!r}")
                continue
            used.add(idx)
            action = actions[idx]
            if str(action.get("Operation", "")).lower() != "heartbeat":
                handled.add(cb_id)
            delay = float(action.get("Delay", 0) or 0)
            if delay > 0:
                sleep(delay)  # the requirement's own timing, not a wait for work
            try:
                _send(backend, arn, cb_id, action, bindings)
            except Exception as err:  # noqa: BLE001 - recorded as the requirement's failure
                out.errors.append(f"callback {action.get('Operation')} for {ev.get('Name')!r} failed: {err!r}")
        if history_only and expected and history_matches(expected, events, bindings):
            matched_early = True
            break
        sleep(POLL_SECONDS)

    if matched_early:
        try:
            backend.stop(arn)
        except Exception:  # noqa: BLE001 - cleanup only
            pass
    else:
        events = backend.history(arn)
    out.events = events
    out.errors += match_history(expected, events, bindings)
    if _terminal_status(events):
        try:
            out.status, out.result, out.error = backend.outcome(arn)
        except Exception as err:  # noqa: BLE001 - recorded as the requirement's failure
            out.errors.append(f"could not read the execution outcome: {err!r}")
        out.errors += check_result(req.expected_result, out.status, out.result, bindings)
    elif req.expected_result:
        out.errors.append("execution did not reach a terminal state")
    if req.expected_logs:
        records = dconf_common.read_records(log_dir, arn) if log_dir else []
        out.errors += check_logs(req.expected_logs, records, bindings)
    out.seconds = time.monotonic() - started
    return out


def _main(argv: list[str]) -> int:
    """Development aid: ``python driver.py [--reference] [suite/n-m|suite ...]``."""
    import concurrent.futures
    import os
    import tempfile

    from requirements import load_requirements

    reqs = load_requirements()
    wanted = [a for a in argv if not a.startswith("--")]
    if wanted:
        reqs = [r for r in reqs if r.key in wanted or r.suite in wanted]
    log_dir = tempfile.mkdtemp(prefix="dconf-logs-")
    os.environ[dconf_common.LOG_DIR_ENV] = log_dir
    os.environ["DURASCOPE_CONF_MAIN_PID"] = str(os.getpid())
    backend = ReferenceBackend()
    for r in reqs:
        backend.register(function_name(r), handler_target(r))
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        futures = {pool.submit(run_requirement, backend, r, log_dir): r for r in reqs}
        for fut in concurrent.futures.as_completed(futures):
            r = futures[fut]
            try:
                res = fut.result()
            except Exception as err:  # noqa: BLE001 - counted and printed
                failed += 1
                print(f"ERROR {r.key}: {err!r}")
                continue
            if res.passed:
                print(f"PASS {r.key} ({res.seconds:.1f}s)")
            else:
                failed += 1
                print("FAIL " + res.report())
    backend.close()
    print(f"{len(reqs) - failed}/{len(reqs)} passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
