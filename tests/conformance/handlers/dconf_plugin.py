"""Handlers for the ``plugin`` suite (requirements 10-1 .. 10-7).

Plugin records go to the conformance log sink (see dconf_common) stamped with
the execution ARN received in ``on_invocation_start``.
"""

from __future__ import annotations

from aws_durable_execution_sdk_python import DurableContext, StepContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.plugin import DurableInstrumentationPlugin, OperationType
from aws_durable_execution_sdk_python.retries import RetryPresets
from dconf_common import emit, fixed_retry, sink_logger


def _status_token(status) -> str:
    return getattr(status, "value", str(status))


class LifecyclePlugin(DurableInstrumentationPlugin):
    """Logs invocation, operation (step only) and attempt hooks."""

    def __init__(self, tag: str, hooks: set[str], arn: str | None) -> None:
        self.tag = tag
        self.hooks = hooks
        self.arn = arn

    def _log(self, **fields) -> None:
        emit(self.arn, {"plugin": self.tag, **fields})

    def on_invocation_start(self, info) -> None:
        self.arn = info.execution_arn or self.arn
        if "invocation" in self.hooks:
            self._log(hook="invocation-start", first=info.is_first_invocation)

    def on_invocation_end(self, info) -> None:
        if "invocation" in self.hooks:
            self._log(hook="invocation-end", status=_status_token(info.status))

    def on_operation_start(self, info) -> None:
        if "operation" in self.hooks and info.operation_type == OperationType.STEP:
            self._log(hook="operation-start", op=info.operation_id)

    def on_operation_end(self, info) -> None:
        if "operation" in self.hooks and info.operation_type == OperationType.STEP:
            self._log(hook="operation-end", op=info.operation_id, status=_status_token(info.status))

    def on_user_function_start(self, info) -> None:
        if "attempt" in self.hooks and info.operation_type == OperationType.STEP:
            self._log(hook="attempt-start", n=info.attempt, op=info.operation_id)

    def on_user_function_end(self, info) -> None:
        if "attempt" in self.hooks and info.operation_type == OperationType.STEP:
            self._log(hook="attempt-end", n=info.attempt, outcome=_status_token(info.outcome), op=info.operation_id)


class LifecyclePluginFactory:
    def __init__(self, tag: str, hooks: set[str]) -> None:
        self.tag = tag
        self.hooks = hooks

    def create_plugin(self, info, /) -> DurableInstrumentationPlugin:
        return LifecyclePlugin(self.tag, self.hooks, getattr(info, "execution_arn", None))


class FaultyPlugin(DurableInstrumentationPlugin):
    """Every hook logs a line, then raises."""

    def __init__(self, arn: str | None) -> None:
        self.arn = arn

    def _boom(self, hook: str) -> None:
        emit(self.arn, {"plugin": "CONFPLUGIN-FAULTY", "hook": hook})
        msg = f"faulty plugin hook {hook}"
        raise RuntimeError(msg)

    def on_invocation_start(self, info) -> None:
        self.arn = info.execution_arn or self.arn
        self._boom("invocation-start")

    def on_invocation_end(self, info) -> None:
        self._boom("invocation-end")

    def on_operation_start(self, info) -> None:
        if info.operation_type == OperationType.STEP:
            self._boom("operation-start")

    def on_operation_end(self, info) -> None:
        if info.operation_type == OperationType.STEP:
            self._boom("operation-end")

    def on_user_function_start(self, info) -> None:
        if info.operation_type == OperationType.STEP:
            self._boom("attempt-start")

    def on_user_function_end(self, info) -> None:
        if info.operation_type == OperationType.STEP:
            self._boom("attempt-end")


class FaultyPluginFactory:
    def create_plugin(self, info, /) -> DurableInstrumentationPlugin:
        return FaultyPlugin(getattr(info, "execution_arn", None))


def _greet(event, context: DurableContext):
    context.set_logger(sink_logger())

    def greet(step_context: StepContext):
        step_context.logger.info(f"Greeting step running for: {event}")
        return f"Hello, {event}!"

    return context.step(greet, name="greet")


@durable_execution(plugins=[LifecyclePluginFactory("CONFPLUGIN", {"invocation"})])
def h_10_1(event, context: DurableContext):
    return _greet(event, context)


@durable_execution(plugins=[LifecyclePluginFactory("CONFPLUGIN", {"operation"})])
def h_10_2(event, context: DurableContext):
    return _greet(event, context)


@durable_execution(plugins=[LifecyclePluginFactory("CONFPLUGIN", {"attempt"})])
def h_10_3(event, context: DurableContext):
    def unreliable(step_context: StepContext):
        if step_context.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "Operation succeeded"

    return context.step(unreliable, name="unreliable_func", config=StepConfig(retry_strategy=fixed_retry(3)))


@durable_execution(plugins=[FaultyPluginFactory()])
def h_10_4(event, context: DurableContext):
    return _greet(event, context)


@durable_execution(
    plugins=[
        LifecyclePluginFactory("CONFPLUGIN-A", {"invocation"}),
        LifecyclePluginFactory("CONFPLUGIN-B", {"invocation"}),
    ]
)
def h_10_5(event, context: DurableContext):
    return _greet(event, context)


@durable_execution(plugins=[LifecyclePluginFactory("CONFPLUGIN", {"invocation"})])
def h_10_6(event, context: DurableContext):
    context.wait(Duration.from_seconds(2))
    return "waited"


@durable_execution(plugins=[LifecyclePluginFactory("CONFPLUGIN", {"invocation"})])
def h_10_7(event, context: DurableContext):
    def failing(_):
        raise RuntimeError("step always fails")

    return context.step(failing, name="failing_func", config=StepConfig(retry_strategy=RetryPresets.none()))
