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
the replay tag is what lets the viewer hide those repeats.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

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
    root_context: object | None = None

    def add(self, level: str, message: str, logger: str | None = None, op_id: str | None = None,
            ts: float | None = None) -> None:
        running, attempt, replay = self._where()
        with self._lock:
            if len(self.lines) >= MAX_LINES or self.size + len(message) > MAX_BYTES:
                self.dropped += 1
                return
            self.size += len(message)
            self.lines.append(CapturedLine(int((ts or time.time()) * 1000), level, logger, message,
                                           op_id or running, replay, attempt if op_id in (None, running) else None))

    def _where(self) -> tuple[str | None, int | None, bool]:
        """The operation running in the writing thread, its attempt, and whether the SDK is
        replaying there. Lines added outside a handler's threads (a worker's relayed output)
        carry no tags."""
        if _current.get() is not self:
            return None, None, False
        op = _operation.get()
        ctx = _durable_context.get() or self.root_context
        try:
            replay = bool(ctx.is_replaying()) if ctx is not None else False  # type: ignore[attr-defined]
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
            self.lines.append(CapturedLine(int(time.time() * 1000), "WARNING", "durascope",
                                           f"{self.dropped} more log lines were dropped (limit {MAX_LINES} lines, {MAX_BYTES} bytes)", None))
            self.dropped = 0
        return self.lines


_current: ContextVar[InvocationLog | None] = ContextVar("durascope_invocation_log", default=None)
# (operation id, attempt) of the user function running now, and the DurableContext it runs in.
_operation: ContextVar[tuple[str, int | None] | None] = ContextVar("durascope_operation", default=None)
_durable_context: ContextVar[object | None] = ContextVar("durascope_durable_context", default=None)
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
    def __init__(self, name: str, original: io.TextIOBase) -> None:
        self._name = name
        self._original = original

    def write(self, text: str) -> int:  # type: ignore[override]
        sink = _current.get()
        if sink is None:
            return self._original.write(text)
        sink.write_stream(self._name, text)
        return len(text)

    def flush(self) -> None:
        if _current.get() is None:
            self._original.flush()

    def __getattr__(self, item: str):  # type: ignore[no-untyped-def]
        return getattr(self._original, item)


_original_start = threading.Thread.start


def _inheriting_start(self: threading.Thread) -> None:
    # Without plugins the SDK runs the handler on a fresh executor thread whose
    # context is empty (Python 3.11 threads do not inherit contextvars), so a thread
    # started while an invocation is being captured carries that capture along.
    sink = _current.get()
    if sink is not None and not getattr(self, "_durascope_sink", None):
        self._durascope_sink = sink  # type: ignore[attr-defined]
        run = self.run

        def run_with_sink() -> None:
            _current.set(sink)
            run()

        self.run = run_with_sink  # type: ignore[method-assign]
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
            threading.Thread.start = _inheriting_start  # type: ignore[method-assign]
            tag_with_sdk_state()
            _installed = True
        # Checked every time: test runners and other tools swap the streams back.
        if not isinstance(sys.stdout, _StreamProxy):
            sys.stdout = _StreamProxy("STDOUT", sys.stdout)  # type: ignore[assignment]
        if not isinstance(sys.stderr, _StreamProxy):
            sys.stderr = _StreamProxy("STDERR", sys.stderr)  # type: ignore[assignment]


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

    def from_lambda_context(*args, **kwargs):  # type: ignore[no-untyped-def]
        ctx = make_root(*args, **kwargs)
        sink = _current.get()
        if sink is not None:
            sink.root_context = ctx
        return ctx

    def wrap_user_function(self, user_function, operation_identifier, *rest, **kw):  # type: ignore[no-untyped-def]
        wrapped = wrap(self, user_function, operation_identifier, *rest, **kw)
        attempt = rest[1] if len(rest) > 1 else kw.get("attempt")
        op_id = operation_identifier.operation_id

        @functools.wraps(user_function)
        def tagged(*args, **kwargs):  # type: ignore[no-untyped-def]
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

    wrap_user_function._durascope = True  # type: ignore[attr-defined]
    DurableContext.from_lambda_context = staticmethod(from_lambda_context)  # type: ignore[method-assign]
    ExecutionState.wrap_user_function = wrap_user_function  # type: ignore[method-assign]


@contextlib.contextmanager
def capture(execution_id: str, request_id: str) -> Iterator[InvocationLog]:
    install()
    sink = InvocationLog(execution_id, request_id)
    token = _current.set(sink)
    try:
        yield sink
    finally:
        _current.reset(token)
