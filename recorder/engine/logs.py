"""Capture what handlers write (logging, print, the SDK's context logger).

In-process invocations share one interpreter, so output is attributed through a
context variable: the SDK copies the context into its step and branch threads, so
everything a handler's threads write lands in its own invocation's buffer. The SDK's
context logger tags records with ``operationId``; those lines are attributed to the
operation too. Lines are stored once the invocation has returned.

Every line is also tagged with where the handler was when it was written, from the SDK's
own bookkeeping (``tag_with_sdk_state``): the operation whose user function was running
(a step's id and attempt inside a step; a child context's id inside one), and whether the
SDK was replaying completed operations or making progress. The handler runs from the start
after every suspension, so plain ``print`` and ``logging`` lines repeat in each invocation;
the replay tag is what lets the viewer hide those repeats. A worker's runtime process tags
its output with the same hooks (``relay``, installed by ``recorder.runtime_process``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:  # the SDK is imported when capture starts, not with this module
    from aws_durable_execution_sdk_python.context import DurableContext

MAX_LINES = 5000
MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CapturedLine:
    ts_ms: int
    level: str
    logger: str | None
    message: str
    op_id: str | None
    replay: bool = False  # written while the SDK was replaying completed operations
    attempt: int | None = None  # the step's attempt, when written inside a step


@dataclass
class InvocationLog:
    execution_id: str
    request_id: str
    lines: list[CapturedLine] = field(default_factory=list)
    size: int = 0
    dropped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _partial: dict[str, str] = field(default_factory=dict)
    # The invocation's root DurableContext (whose replay status applies outside any operation).
    root_context: DurableContext | None = None

    def add(
        self,
        level: str,
        message: str,
        logger: str | None = None,
        op_id: str | None = None,
        ts: float | None = None,
        tags: tuple[str | None, int | None, bool] | None = None,
    ) -> None:
        """``tags``: (operation, attempt, replay) as found where the line was written, for
        lines relayed from another process (a worker's runtime); otherwise they are read here."""
        running, attempt, replay = tags if tags is not None else self._where()
        with self._lock:
            if len(self.lines) >= MAX_LINES or self.size + len(message) > MAX_BYTES:
                self.dropped += 1
                return
            self.size += len(message)
            self.lines.append(
                CapturedLine(
                    int((ts or time.time()) * 1000),
                    level,
                    logger,
                    message,
                    op_id or running,
                    replay,
                    attempt if op_id in (None, running) else None,
                )
            )

    def _where(self) -> tuple[str | None, int | None, bool]:
        """The operation running in the writing thread, its attempt, and whether the SDK is
        replaying there. Lines added outside a handler's threads carry no tags (a worker's
        relayed output brings its own, found in the runtime by ``relay``)."""
        if _current.get() is not self:
            return None, None, False
        op = _operation.get()
        ctx = _durable_context.get() or self.root_context
        try:
            replay = bool(ctx.is_replaying()) if ctx is not None else False
        except Exception:  # noqa: BLE001 - a tag must never break a handler's logging
            replay = False
        return (op[0], op[1], replay) if op else (None, None, replay)

    def write_stream(self, stream: str, text: str) -> None:
        # print() writes the text and the newline separately; keep whole lines.
        with self._lock:
            buf = self._partial.get(stream, "") + text
            *complete, rest = buf.split("\n")
            self._partial[stream] = rest
        for line in complete:
            self.add(stream, line)

    def finish(self) -> list[CapturedLine]:
        for stream, rest in list(self._partial.items()):
            if rest:
                self.add(stream, rest)
        self._partial.clear()
        if self.dropped:
            self.lines.append(
                CapturedLine(
                    int(time.time() * 1000),
                    "WARNING",
                    "durascope",
                    f"{self.dropped} more log lines were dropped (limit {MAX_LINES} lines, {MAX_BYTES} bytes)",
                    None,
                )
            )
            self.dropped = 0
        return self.lines


_current: ContextVar[InvocationLog | None] = ContextVar("durascope_invocation_log", default=None)
# (operation id, attempt) of the user function running now, and the DurableContext it runs in.
_operation: ContextVar[tuple[str, int | None] | None] = ContextVar("durascope_operation", default=None)
_durable_context: ContextVar[DurableContext | None] = ContextVar("durascope_durable_context", default=None)
_installed = False
_install_lock = threading.Lock()


class _RoutingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._fallback = logging.StreamHandler(sys.__stderr__)
        self._fallback.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        sink = _current.get()
        if sink is None:
            if record.levelno >= logging.WARNING:
                self._fallback.handle(record)
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            sink.add(record.levelname, message, record.name, getattr(record, "operationId", None), record.created)
        except Exception:  # noqa: BLE001 - logging must never break a handler
            self.handleError(record)


class _StreamProxy(io.TextIOBase):
    def __init__(self, name: str, original: TextIO) -> None:
        self._name = name
        self._original = original

    def write(self, text: str) -> int:
        sink = _current.get()
        if sink is None:
            return self._original.write(text)
        sink.write_stream(self._name, text)
        return len(text)

    def flush(self) -> None:
        if _current.get() is None:
            self._original.flush()

    def __getattr__(self, item: str) -> Any:
        return getattr(self._original, item)


_original_start = threading.Thread.start


def _inheriting_start(self: threading.Thread) -> None:
    # Without plugins the SDK runs the handler on a fresh executor thread whose
    # context is empty (Python 3.11 threads do not inherit contextvars), so a thread
    # started while an invocation is being captured carries that capture along.
    sink = _current.get()
    if sink is not None and not getattr(self, "_durascope_sink", None):
        self._durascope_sink = sink  # type: ignore[attr-defined]  # a mark on the thread: carried once
        run = self.run

        def run_with_sink() -> None:
            _current.set(sink)
            run()

        self.run = run_with_sink  # type: ignore[method-assign]  # this thread only runs inside the capture
    _original_start(self)


def install() -> None:
    """Route logging and stdout/stderr of invocations into their buffers (idempotent)."""
    global _installed
    with _install_lock:
        if not _installed:
            root = logging.getLogger()
            root.addHandler(_RoutingHandler())
            # Lambda's default application log level is INFO.
            if root.level in (logging.NOTSET, logging.WARNING):
                root.setLevel(logging.INFO)
            threading.Thread.start = _inheriting_start  # type: ignore[method-assign]  # deliberate: see the function
            tag_with_sdk_state()
            _installed = True
        # Checked every time: test runners and other tools swap the streams back.
        if not isinstance(sys.stdout, _StreamProxy):
            sys.stdout = _StreamProxy("STDOUT", sys.stdout)
        if not isinstance(sys.stderr, _StreamProxy):
            sys.stderr = _StreamProxy("STDERR", sys.stderr)


def tag_with_sdk_state() -> None:
    """Follow the SDK's state from the two places every invocation passes through:

    * ``DurableContext.from_lambda_context`` makes an invocation's root context; its
      ``is_replaying()`` is the SDK's replay status outside any operation.
    * ``ExecutionState.wrap_user_function`` wraps every user function the SDK runs inside an
      operation (a step's body, a child context's function, a wait_for_condition check),
      with the operation's identifier and attempt; a child context is the function's first
      argument, and its own ``is_replaying()`` applies inside it.

    Both are wrapped, not replaced: the SDK's behaviour is unchanged."""
    from aws_durable_execution_sdk_python.context import DurableContext
    from aws_durable_execution_sdk_python.state import ExecutionState

    if getattr(ExecutionState.wrap_user_function, "_durascope", False):
        return
    make_root = DurableContext.from_lambda_context
    wrap = ExecutionState.wrap_user_function

    def from_lambda_context(*args: Any, **kwargs: Any) -> Any:
        ctx = make_root(*args, **kwargs)
        sink = _current.get()
        if sink is not None:
            sink.root_context = ctx
        return ctx

    def wrap_user_function(
        self: Any, user_function: Callable[..., Any], operation_identifier: Any, *rest: Any, **kw: Any
    ) -> Callable[..., Any]:
        wrapped = wrap(self, user_function, operation_identifier, *rest, **kw)
        attempt = rest[1] if len(rest) > 1 else kw.get("attempt")
        op_id = operation_identifier.operation_id

        @functools.wraps(user_function)
        def tagged(*args: Any, **kwargs: Any) -> Any:
            op_token = _operation.set((op_id, attempt))
            child = args[0] if args and isinstance(args[0], DurableContext) else None
            ctx_token = _durable_context.set(child) if child is not None else None
            try:
                return wrapped(*args, **kwargs)
            finally:
                if ctx_token is not None:
                    _durable_context.reset(ctx_token)
                _operation.reset(op_token)

        return tagged

    # The SDK's two methods are wrapped in place, on purpose (the docstring says why); mypy
    # refuses assignments to methods and attributes it did not declare.
    wrap_user_function._durascope = True  # type: ignore[attr-defined]
    DurableContext.from_lambda_context = staticmethod(from_lambda_context)  # type: ignore[method-assign]
    ExecutionState.wrap_user_function = wrap_user_function  # type: ignore[method-assign]


class _RelayedOutput(InvocationLog):
    """A runtime process's whole output, handed on chunk by chunk with its tags, as it is
    written (nothing is held back: a runtime may die mid-invocation)."""

    def __init__(self, emit: Callable[[str, str, str | None, int | None, bool], None]) -> None:
        super().__init__("", "")
        self._emit = emit

    def write_stream(self, stream: str, text: str) -> None:
        op, attempt, replay = self._where()
        self._emit(stream, text, op, attempt, replay)


def relay(emit: Callable[[str, str, str | None, int | None, bool], None]) -> None:
    """In a worker's runtime process (``recorder.runtime_process``): everything Python code
    writes to stdout or stderr, in this thread and the threads it starts, goes to
    ``emit(stream, text, operation id, attempt, replay)`` instead, tagged from the SDK's state
    as in-process lines are. Logging is left to the runtime (``awslambdaric`` writes its
    records to stdout, so they pass here too)."""
    sink = _RelayedOutput(emit)
    threading.Thread.start = _inheriting_start  # type: ignore[method-assign]  # deliberate, as in install
    with contextlib.suppress(Exception):  # no SDK (or another one): lines go untagged
        tag_with_sdk_state()
    _current.set(sink)
    sys.stdout = _StreamProxy("STDOUT", sys.stdout)
    sys.stderr = _StreamProxy("STDERR", sys.stderr)


@contextlib.contextmanager
def capture(execution_id: str, request_id: str) -> Iterator[InvocationLog]:
    install()
    sink = InvocationLog(execution_id, request_id)
    token = _current.set(sink)
    try:
        yield sink
    finally:
        _current.reset(token)
