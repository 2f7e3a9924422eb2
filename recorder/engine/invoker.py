"""The in-process invoker: runs a handler on a thread of the engine process.

It hands the SDK a ``DurableExecutionInvocationInputWithClient`` whose service client
calls the control plane directly (no HTTP), and maps control-plane errors to the SDK's
``CheckpointError``/``GetExecutionStateError`` exactly as botocore errors would be
mapped, so the SDK classifies retries the same way on both paths (docs/protocol.md#invocation-event).
This is the fast path; it shares the process (and ``os.environ``) with the engine, so
per-function environment variables and timeouts need worker processes.
``recorder.engine.processes`` runs the same ``run_handler`` in child interpreters.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_durable_execution_sdk_python.exceptions import CheckpointError, GetExecutionStateError
from aws_durable_execution_sdk_python.execution import (
    DurableExecutionInvocationInputWithClient,
    InitialExecutionState,
)
from aws_durable_execution_sdk_python.lambda_service import (
    CheckpointOutput,
    Operation,
    OperationUpdate,
    StateOutput,
)

from recorder.engine import logs
from recorder.engine.boundary import FunctionSpec, InvocationInput, InvocationOutcome, OutcomeStatus, split_handler
from recorder.engine.control import ControlPlane
from recorder.engine.state_pages import render_op, render_ops
from recorder.errors import ServiceError
from recorder.wire import ts_datetime


class _BotoShaped(Exception):
    """Carries a boto-style ``response`` so the SDK's from_exception classifies it."""

    def __init__(self, message: str, response: dict[str, Any]) -> None:
        super().__init__(message)
        self.response = response


def _as_boto(exc: Exception) -> _BotoShaped:
    if isinstance(exc, ServiceError):
        return _BotoShaped(exc.message, exc.to_boto_response())
    return _BotoShaped(
        f"{type(exc).__name__}: {exc}",
        {"Error": {"Code": "ServiceException", "Message": str(exc)}, "ResponseMetadata": {"HTTPStatusCode": 500}},
    )


def serve_call(
    control: ControlPlane, method: str, args: tuple[Any, ...], ts: Callable[[int], Any] = ts_datetime
) -> tuple[bool, Any]:
    """Serve one service-client call: ``(True, response)`` or ``(False, (message, boto
    response))``, the failure shaped as botocore would raise it. Timestamps are rendered
    with ``ts`` (``render_timestamps`` finishes a response served with ``ts_ms``)."""
    try:
        if method == "checkpoint":
            arn, token, updates, client_token = args
            return True, control.checkpoint(arn, token, updates, client_token, ts=ts)
        if method == "get_state":
            arn, token, marker, max_items = args
            return True, control.get_state(arn, token, marker, max_items, ts=ts)
        raise ValueError(f"unknown service call {method!r}")
    except Exception as exc:  # noqa: BLE001 - every failure must reach the SDK classified
        shaped = _as_boto(exc)
        return False, (str(shaped), shaped.response)


def render_timestamps(method: str, body: dict[str, Any]) -> dict[str, Any]:
    """A response served with ``ts=ts_ms``, with the datetimes the SDK's parsers expect."""
    if method == "checkpoint":
        return render_ops(body, ts_datetime)
    return {**body, "Operations": [render_op(o, ts_datetime) for o in body["Operations"]]}


_OUTPUTS: dict[str, tuple[Any, Any]] = {
    "checkpoint": (CheckpointOutput, CheckpointError),
    "get_state": (StateOutput, GetExecutionStateError),
}


class ServiceClient:
    """The SDK's ``DurableServiceClient`` protocol over ``serve_call``; subclasses say
    how a call reaches the control plane (a function call, or a pipe to the engine)."""

    def call(self, method: str, args: tuple[Any, ...]) -> tuple[bool, Any]:
        raise NotImplementedError

    def _result(self, method: str, args: tuple[Any, ...]) -> Any:
        ok, body = self.call(method, args)
        output, error = _OUTPUTS[method]
        if not ok:
            raise error.from_exception(_BotoShaped(*body))
        return output.from_dict(body)

    def checkpoint(
        self,
        durable_execution_arn: str,
        checkpoint_token: str,
        updates: list[OperationUpdate],
        client_token: str | None,
    ) -> CheckpointOutput:
        out: CheckpointOutput = self._result(
            "checkpoint", (durable_execution_arn, checkpoint_token, [u.to_dict() for u in updates], client_token)
        )
        return out

    def get_execution_state(
        self, durable_execution_arn: str, checkpoint_token: str, next_marker: str, max_items: int = 1000
    ) -> StateOutput:
        out: StateOutput = self._result(
            "get_state", (durable_execution_arn, checkpoint_token, next_marker or None, max_items)
        )
        return out


class InProcessServiceClient(ServiceClient):
    """Served by the control plane on the calling thread."""

    def __init__(self, control: ControlPlane) -> None:
        self.control = control

    def call(self, method: str, args: tuple[Any, ...]) -> tuple[bool, Any]:
        return serve_call(self.control, method, args)


@dataclass
class LambdaContext:
    """The parts of the Lambda context object the SDK and handlers read."""

    aws_request_id: str
    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    deadline_ms: int
    tenant_id: str | None = None
    log_group_name: str = "/aws/lambda/durascope"
    log_stream_name: str = "durascope"
    client_context: Any = None
    identity: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


def error_from_exception(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    name = cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    return {
        "ErrorType": name,
        "ErrorMessage": str(exc),
        "StackTrace": traceback.format_exception(exc)[-20:],
    }


def _crash_error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, SystemExit):
        # What Lambda reports when the runtime process exits during an invocation.
        return {
            "ErrorType": "Runtime.ExitError",
            "ErrorMessage": f"RequestId: the handler exited with status {exc.code!r}",
        }
    return error_from_exception(exc)


def runtime_exited(code: int) -> str:
    """Lambda's words for a runtime process that ended during an invocation, from its
    return code: "Runtime exited with status 3", "... with signal SIGKILL"."""
    if code >= 0:
        return f"Runtime exited with status {code}"
    try:
        return f"Runtime exited with signal {signal.Signals(-code).name}"
    except ValueError:
        return f"Runtime exited with signal {-code}"


class HandlerCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str | None], Any] = {}

    def resolve(self, spec: FunctionSpec) -> Any:
        key = (spec.handler, spec.code_dir)
        with self._lock:
            fn = self._cache.get(key)
            if fn is not None:
                return fn
            if spec.code_dir and spec.code_dir not in sys.path:
                sys.path.insert(0, spec.code_dir)
            module_name, attr = split_handler(spec.handler)
            module = importlib.import_module(module_name)
            fn = getattr(module, attr)
            self._cache[key] = fn
            return fn


def run_handler(
    handlers: HandlerCache, inv: InvocationInput, client: ServiceClient, function_arn: str, memory_mb: int
) -> tuple[InvocationOutcome, list[logs.CapturedLine]]:
    """One invocation on the calling thread: what Lambda's runtime does between
    ``next`` and ``response``. Shared by the in-process and the process invokers."""
    try:
        handler = handlers.resolve(inv.function)
    except Exception as exc:  # noqa: BLE001 - an import error is a failed invocation (Runtime.ImportModuleError)
        err = error_from_exception(exc)
        err["ErrorType"] = "Runtime.ImportModuleError"
        return InvocationOutcome(OutcomeStatus.ERROR, error=err), []
    event = DurableExecutionInvocationInputWithClient(
        durable_execution_arn=inv.arn,
        checkpoint_token=inv.token,
        initial_execution_state=InitialExecutionState(
            operations=[Operation.from_dict(render_op(o, ts_datetime)) for o in inv.operations],
            next_marker=inv.next_marker,
        ),
        updated_operation_ids=inv.updated_operation_ids,
        service_client=client,
    )
    context = LambdaContext(
        aws_request_id=inv.request_id,
        function_name=inv.function.name,
        function_version="$LATEST",
        invoked_function_arn=function_arn,
        memory_limit_in_mb=memory_mb,
        deadline_ms=int(time.time() * 1000) + inv.function.timeout * 1000,
    )
    with logs.capture(inv.execution_id, inv.request_id) as sink:
        try:
            output = handler(event, context)
            outcome = InvocationOutcome.from_envelope(output)
        except BaseException as exc:  # noqa: BLE001 - sys.exit() in a handler is a crashed invocation too
            outcome = InvocationOutcome(OutcomeStatus.ERROR, error=_crash_error(exc))
    return outcome, sink.finish()


class InProcessInvoker:
    def __init__(self, control: ControlPlane, memory_mb: int = 512) -> None:
        self.control = control
        self.client = InProcessServiceClient(control)
        self.handlers = HandlerCache()
        self.memory_mb = memory_mb

    def invoke(self, inv: InvocationInput) -> InvocationOutcome:
        fn_arn = self.control.function_arn(inv.function.name, "$LATEST")
        outcome, lines = run_handler(self.handlers, inv, self.client, fn_arn, self.memory_mb)
        if lines:
            self.control.store_logs(inv.execution_id, inv.request_id, lines)
        return outcome

    def close(self) -> None:
        pass
