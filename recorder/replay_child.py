"""The interpreter a replay check runs in: ``python -m recorder.replay_child`` reads one
job (JSON) on stdin and writes one report (JSON) on stdout.

The handler runs with the SDK's own replay, unmodified. Two things around it keep the
check from doing any work the history did not record:

* the service client answers from the history and takes no checkpoint: the first
  update the SDK sends is new work, so the check ends there;
* an instrumentation plugin (the SDK's own extension point, named in
  ``DURABLE_EXECUTION_PLUGINS`` and found through an entry point this process declares)
  sees each operation before its START is queued and each user function before it runs,
  so a step the history lacks, or one it never completed, ends the check before its
  body runs. It also sees which recorded operations the code reached.

A thread that reaches new work is parked, never resumed: the process reports and exits.
A fresh process per check also means the handler's module is imported as it is on disk
now, not as an earlier import left it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_durable_execution_sdk_python.plugin import DurableInstrumentationPlugin

PLUGIN_NAME = "durascope-replay-check"
_TS_FIELDS = ("StartTimestamp", "EndTimestamp")


@dataclass
class Observed:
    """What the plugin and the service client saw, written by the SDK's threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)
    reached: set[str] = field(default_factory=set)
    entered: set[str] = field(default_factory=set)  # contexts whose body ran
    new_work: dict[str, Any] | None = None

    def stop_at(self, what: dict[str, Any]) -> None:
        with self.lock:
            if self.new_work is None:
                self.new_work = what
        self.done.set()
        threading.Event().wait()  # parked for good: this thread must not go on to do the work


OBSERVED = Observed()


def _kind(value: Any) -> str:
    return str(getattr(value, "value", value))


class _Plugin(DurableInstrumentationPlugin):
    def on_operation_start(self, info: Any) -> None:
        if not info.is_replayed:
            OBSERVED.stop_at({"reason": "new", "id": info.operation_id, "type": _kind(info.operation_type),
                              "subType": info.sub_type, "name": info.name, "parentId": info.parent_id})
        with OBSERVED.lock:
            OBSERVED.reached.add(info.operation_id)

    def on_operation_end(self, info: Any) -> None:
        with OBSERVED.lock:
            OBSERVED.reached.add(info.operation_id)

    def on_user_function_start(self, info: Any) -> None:
        if _kind(info.operation_type) == "STEP":
            # A step body runs only when the history did not complete the step.
            OBSERVED.stop_at({"reason": "incomplete", "id": info.operation_id, "type": "STEP",
                              "subType": info.sub_type, "name": info.name, "parentId": info.parent_id})
        with OBSERVED.lock:
            OBSERVED.reached.add(info.operation_id)
            OBSERVED.entered.add(info.operation_id)


class _Factory:
    def create_plugin(self, info: Any) -> _Plugin:
        return _Plugin()


PLUGIN = _Factory()


def _declare_plugin(where: Path) -> None:
    """An entry point for the plugin, on sys.path: how the SDK finds plugins by name."""
    dist = where / "durascope_replay_check-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: durascope-replay-check\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[aws_durable_execution.plugins]\n{PLUGIN_NAME} = "
                                           f"recorder.replay_child:PLUGIN\n")
    sys.path.insert(0, str(where))
    named = [n for n in os.environ.get("DURABLE_EXECUTION_PLUGINS", "").split(",") if n.strip()]
    os.environ["DURABLE_EXECUTION_PLUGINS"] = ",".join([*named, PLUGIN_NAME])


def _as_sdk(op: dict[str, Any]) -> dict[str, Any]:
    def ts(ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ms / 1000.0, tz=dt.UTC)

    out = dict(op)
    for key in _TS_FIELDS:
        if key in out:
            out[key] = ts(out[key])
    step = out.get("StepDetails", {})
    if "NextAttemptTimestamp" in step:
        out["StepDetails"] = {**step, "NextAttemptTimestamp": ts(step["NextAttemptTimestamp"])}
    if "ScheduledEndTimestamp" in out.get("WaitDetails", {}):
        out["WaitDetails"] = {"ScheduledEndTimestamp": ts(out["WaitDetails"]["ScheduledEndTimestamp"])}
    return out


class _RecordedService:
    """The SDK's service client over the history: state from it, and no new checkpoints."""

    def checkpoint(self, durable_execution_arn: str, checkpoint_token: str, updates: list[Any],
                   client_token: str | None) -> Any:
        first = updates[0] if updates else None
        if first is not None:
            OBSERVED.stop_at({"reason": "checkpoint", "id": first.operation_id, "type": _kind(first.operation_type),
                              "subType": _kind(first.sub_type) if first.sub_type else None, "name": first.name,
                              "parentId": first.parent_id, "action": _kind(first.action)})
        from aws_durable_execution_sdk_python.lambda_service import (
            CheckpointOutput,
            CheckpointUpdatedExecutionState,
        )

        return CheckpointOutput(checkpoint_token=checkpoint_token,
                                new_execution_state=CheckpointUpdatedExecutionState(operations=[], next_marker=None))

    def get_execution_state(self, durable_execution_arn: str, checkpoint_token: str, next_marker: str,
                            max_items: int = 1000) -> Any:
        from aws_durable_execution_sdk_python.lambda_service import StateOutput

        return StateOutput(operations=[], next_marker=None)


@dataclass
class _Context:
    """The parts of the Lambda context the SDK reads."""

    aws_request_id: str = "replay-check"
    function_name: str = "replay-check"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:replay-check"
    memory_limit_in_mb: int = 128
    tenant_id: str | None = None
    log_group_name: str = "/aws/lambda/replay-check"
    log_stream_name: str = "replay-check"
    client_context: Any = None
    identity: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def run(job: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="durascope-replay-") as tmp:
        _declare_plugin(Path(tmp))
        if job.get("codeDir"):
            sys.path.insert(0, job["codeDir"])
        try:
            handler = _import_handler(job["handler"])
        except Exception as exc:  # noqa: BLE001 - whatever the import raises is the answer
            return {"outcome": "error", "message": f"handler {job['handler']} does not import: "
                                                   f"{type(exc).__name__}: {exc}"}
        return _replay(handler, job)


def _import_handler(spec: str) -> Any:
    import importlib

    from recorder.engine.invoker import split_handler

    module_name, attr = split_handler(spec)
    fn = getattr(importlib.import_module(module_name), attr)
    if not callable(fn):
        raise TypeError(f"{attr} is not a function")
    return fn


def _replay(handler: Any, job: dict[str, Any]) -> dict[str, Any]:
    from aws_durable_execution_sdk_python.execution import (
        DurableExecutionInvocationInputWithClient,
        InitialExecutionState,
    )
    from aws_durable_execution_sdk_python.lambda_service import Operation

    ops = [Operation.from_dict(_as_sdk(o)) for o in job["operations"]]
    event = DurableExecutionInvocationInputWithClient(
        durable_execution_arn=job["arn"], checkpoint_token="replay-check",
        initial_execution_state=InitialExecutionState(operations=ops, next_marker=""),
        # Every recorded operation counts as news to this invocation, so the SDK reports
        # each one the code reaches, terminal ones included (the plugin's end hook).
        updated_operation_ids=[o["Id"] for o in job["operations"] if o["Type"] != "EXECUTION"],
        service_client=_RecordedService())
    result: dict[str, Any] = {}

    def invoke() -> None:
        try:
            result["output"] = handler(event, _Context())
        except BaseException as exc:  # noqa: BLE001
            result["raised"] = f"{type(exc).__name__}: {exc}"
        OBSERVED.done.set()

    threading.Thread(target=invoke, name="replay-check", daemon=True).start()
    finished = OBSERVED.done.wait(float(job.get("timeout", 60)))
    with OBSERVED.lock:
        report: dict[str, Any] = {"reached": sorted(OBSERVED.reached), "entered": sorted(OBSERVED.entered),
                                  "newWork": OBSERVED.new_work}
    if not finished:
        return {"outcome": "error", "message": f"the handler neither finished nor reached new work within "
                                               f"{job.get('timeout', 60)} s"}
    if report["newWork"] is None:
        if "raised" in result:
            report["raised"] = result["raised"]
        else:
            report["output"] = result.get("output")
    report["outcome"] = "ran"
    return report


def main() -> None:
    job = json.load(sys.stdin)
    out = sys.stdout
    # What the handler prints is not the report.
    with contextlib.redirect_stdout(io.StringIO()):
        report = run(job)
    out.write(json.dumps(report, default=str))
    out.flush()
    os._exit(0)  # parked threads must not hold the process


if __name__ == "__main__":
    # The SDK loads the plugin as ``recorder.replay_child``; run that module, not a second
    # copy of it named __main__, so that both see one OBSERVED.
    from recorder.replay_child import main as _main

    _main()
