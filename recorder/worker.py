"""Worker hosts: run handlers in processes of their own, the way Lambda runs them.

Each *runtime slot* is one ``awslambdaric`` process (the official runtime interface
client, hosting the handler exactly as in Lambda) plus the small Runtime API endpoint it
talks to (``/2018-06-01/runtime/invocation/next``, ``.../response``, ``.../error``,
``/2018-06-01/runtime/init/error``) on a loopback port, like Lambda's per-sandbox RAPID.
The endpoint relays to the engine through a ``Backend``:

* ``HttpBackend`` for ``durascope worker --engine URL`` on any host: the worker talks to
  the engine over HTTP only (``viewer.runtime_api``);
* ``DirectBackend`` for the workers ``durascope serve`` starts itself.

Either way the SDK inside the handler checkpoints through boto3 with
``AWS_ENDPOINT_URL_LAMBDA`` pointing at the engine. Processes are reused across
invocations (warm environments). A slot's supervisor notices a runtime that dies
mid-invocation (``os._exit``, SIGKILL, the kernel's OOM killer) or overruns the function
timeout (it is killed), reports the invocation as failed (``Runtime.ExitError`` /
``Sandbox.Timedout``) so the engine retries it as Lambda does, and starts a fresh runtime.
What the runtime prints is attributed to the invocation it was running and stored with it,
up to the same cap as in-process output.

No runtime outlives its engine: a runtime dies with the process that started it
(``recorder.runtime_process``), which is the engine itself for ``serve``'s workers; a
``durascope worker`` host on another machine watches the engine it works for and stops
the runtimes whose invocations that engine no longer waits for (it died, restarted or
gave up on them), or all of them once the engine has been unreachable for
``ENGINE_LOST_SECONDS``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from recorder.engine import logs as engine_logs
from recorder.engine.boundary import RESPONSE_LIMIT, RESPONSE_TOO_LARGE, FunctionSpec
from recorder.engine.invoker import runtime_exited
from recorder.engine.logs import CapturedLine, InvocationLog
from recorder.runtime_process import RuntimeProcess, RuntimeSpec
from recorder.worker_backend import (
    Backend,
    DirectBackend,
    EngineRefused,
    HttpBackend,
    RuntimeOutput,
    Task,
    require_secure_engine,
)

__all__ = ["DirectBackend", "FunctionSpec", "HttpBackend", "RuntimeSlot", "WorkerHost", "run_worker"]

log = logging.getLogger("durascope.worker")

RUNTIME_PREFIX = "/2018-06-01/runtime"
POLL_SECONDS = 20.0
# How late a runtime past its deadline may be noticed (it is then killed).
DEADLINE_CHECK_SECONDS = 0.25
# A remote engine that cannot be reached for this long is taken for dead, and the
# runtimes working for it are stopped.
ENGINE_LOST_SECONDS = 3.0
# How long after an invocation's deadline its outcome is still offered to an engine that
# fails to take it (the engine waits that long past the function's timeout).
REPORT_GRACE_SECONDS = 5.0
# How long one question to the engine about the invocations running here may wait.
WATCH_SECONDS = 10.0
# What Lambda's Runtime API answers a runtime whose response is too large.
_TOO_LARGE_REPLY = json.dumps(
    {
        "errorMessage": f"Exceeded maximum allowed payload size ({RESPONSE_LIMIT} bytes).",
        "errorType": "RequestEntityTooLarge",
    }
).encode()


@dataclass
class _Current:
    task: Task
    output: InvocationLog
    # Set once the runtime has answered: its outcome is on its way to the engine, which
    # may then say it no longer waits for this invocation; that is no reason to stop it.
    answered: bool = False

    @classmethod
    def of(cls, task: Task) -> _Current:
        return cls(task, InvocationLog("", task.request_id))


class RuntimeSlot:
    """One runtime process and its Runtime API endpoint, supervised."""

    def __init__(
        self,
        backend: Backend,
        config: FunctionSpec,
        engine_url: str,
        region: str,
        credentials: tuple[str, str] = ("durascope", "durascope"),
        on_task: Any = None,
    ) -> None:
        self.backend = backend
        self.config = config
        self.engine_url = engine_url
        self.region = region
        self.credentials = credentials
        self.worker_id = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._on_task = on_task
        self._lock = threading.Lock()
        self._current: _Current | None = None
        self._init_error: dict[str, Any] | None = None
        self._stopping = threading.Event()
        self._runtime: RuntimeProcess | None = None
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name=f"runtime-api-{self.config.name}", daemon=True).start()
        threading.Thread(target=self._supervise, name=f"runtime-{self.config.name}", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        runtime = self._runtime
        if runtime is not None and runtime.proc.poll() is None:
            runtime.proc.terminate()
            try:
                runtime.proc.wait(5)
            except Exception:  # noqa: BLE001 - TimeoutExpired: it ignores SIGTERM
                runtime.kill_group()
        self._server.shutdown()
        self._server.server_close()

    @property
    def pid(self) -> int | None:
        return self._runtime.pid if self._runtime is not None else None

    @property
    def running(self) -> str | None:
        """The request id of the invocation the runtime is working on, if any."""
        current = self._current
        return current.task.request_id if current is not None and not current.answered else None

    # --- the runtime process -----------------------------------------------------------

    def _spawn(self) -> RuntimeProcess:
        cfg = self.config
        runtime = RuntimeProcess(
            RuntimeSpec(
                handler=cfg.lambda_handler,
                function_name=cfg.name,
                code_dir=cfg.code_dir or os.getcwd(),
                memory_mb=cfg.memory_mb,
                timeout=cfg.timeout,
                function_env=cfg.env,
                runtime_api=f"127.0.0.1:{self.port}",
                region=self.region,
                credentials=self.credentials,
                engine_url=self.engine_url,
                tagger=engine_logs.__file__,
            )
        )
        with self._lock:
            self._runtime = runtime
        threading.Thread(target=self._read_output, args=(runtime,), daemon=True).start()
        return runtime

    def _read_output(self, runtime: RuntimeProcess) -> None:
        """Take the runtime's output as it comes, for the invocation running then."""
        output = runtime.output
        while True:
            output.wait_readable()
            with self._lock:
                lines = output.drain()
                current = self._current
                if current is not None:
                    _keep(current.output, lines)
                    lines = []
            for line in lines:
                log.debug("%s runtime: %s", self.config.name, line["message"])
            if output.ended:
                output.close()
                return

    def _collect(self, current: _Current) -> RuntimeOutput:
        """Everything the runtime wrote for an invocation it has ended (or died in).

        It wrote that output before it posted its response (it runs unbuffered) or before
        it exited, so the output is in the pipe now: read to the end of what is there,
        with a last line that has no newline, instead of pausing for the reader thread.
        """
        with self._lock:
            runtime = self._runtime
            if runtime is not None:
                _keep(current.output, runtime.output.drain(final=True))
            sink = current.output
            return RuntimeOutput([_relayed(ln) for ln in sink.lines], sink.dropped)

    def _supervise(self) -> None:
        # The runtime is started from this thread, which lives as long as the slot: the
        # kernel's parent-death signal follows the thread that started a process.
        while not self._stopping.is_set():
            runtime = self._spawn()
            proc = runtime.proc
            # A thread blocked in waitpid tells us the runtime exited. Popen.wait(timeout)
            # polls (waitpid and a sleep, ~7 times a call): with a 50 ms timeout here each
            # runtime woke the engine ~140 times a second.
            exited = threading.Event()
            threading.Thread(
                target=lambda proc=proc, runtime=runtime, exited=exited: (proc.wait(), runtime.reaped(), exited.set()),
                daemon=True,
                name=f"durascope-runtime-wait-{proc.pid}",
            ).start()
            reason: dict[str, Any] | None = None
            while not self._stopping.is_set():
                with self._lock:
                    current = self._current
                # Look again at least every DEADLINE_CHECK_SECONDS: an invocation taken
                # meanwhile brings a deadline.
                wait = (
                    DEADLINE_CHECK_SECONDS
                    if current is None
                    else min(DEADLINE_CHECK_SECONDS, max(0.0, current.task.deadline_ms / 1000 - time.time()))
                )
                code = proc.returncode if exited.wait(wait) else None
                if code is not None:
                    reason = {
                        "errorType": "Runtime.ExitError",
                        "errorMessage": f"RequestId: {current.task.request_id if current else '-'} "
                        f"Error: {runtime_exited(code)}",
                    }
                    break
                if current is not None and time.time() * 1000 > current.task.deadline_ms:
                    runtime.kill_group()
                    exited.wait()
                    reason = {
                        "errorType": "Sandbox.Timedout",
                        "errorMessage": f"Task timed out after {self.config.timeout:.2f} seconds",
                    }
                    break
            if self._stopping.is_set():
                return
            with self._lock:
                current, self._current = self._current, None
            if current is not None and reason is not None:
                self._finish(
                    current,
                    lambda failed=current, reason=reason: self.backend.fail(
                        self.config.name, failed.task.request_id, reason
                    ),
                )
            if self._init_error is not None:
                self._fail_next_with_init_error()
            # A runtime that keeps dying must not spin: back off a little.
            self._stopping.wait(0.2 if current is not None else 1.0)

    def _fail_next_with_init_error(self) -> None:
        """Lambda reports an init failure as the failure of the invocation it was for."""
        error, self._init_error = self._init_error, None
        try:
            task = self.backend.next(self.config.name, self.worker_id, 1.0)
            if task is not None and error is not None:
                self.backend.fail(self.config.name, task.request_id, error)
        except Exception:  # noqa: BLE001 - the engine may be gone; the next start retries
            return

    def _finish(self, current: _Current, send: Any) -> None:
        """Store the invocation's output, then report its outcome (the engine forgets an
        invocation once it has its outcome). Both are retried with backoff while they fail
        (the engine's database restarting, say): the outcome is only here. An engine that
        cannot be reached by the invocation's deadline has given up on it (or gone): say
        so once, no traceback."""
        output = self._collect(current)
        give_up = current.task.deadline_ms / 1000 + REPORT_GRACE_SECONDS
        logged = not (output.lines or output.dropped)
        delay = 0.05
        while True:
            try:
                if not logged:
                    self.backend.logs(self.config.name, current.task.request_id, output)
                    logged = True
                send()
                return
            except Exception as exc:  # noqa: BLE001 - any failure to report is retried until the deadline
                if time.time() > give_up or self._stopping.wait(delay):
                    log.warning(
                        "could not report invocation %s of %s to the engine: %s",
                        current.task.request_id,
                        self.config.name,
                        exc,
                    )
                    return
            delay = min(delay * 2, 1.0)

    def abandon(self, request_id: str, why: str) -> None:
        """The engine no longer waits for ``request_id``: stop the runtime working on it
        (a fresh one starts), and report nothing."""
        with self._lock:
            current = self._current
            if current is None or current.answered or current.task.request_id != request_id:
                return
            self._current = None
            runtime = self._runtime
        log.warning("stopping the runtime of %s working on %s: %s", self.config.name, request_id, why)
        if runtime is not None:
            runtime.kill_group()

    # --- Runtime API requests (called by the HTTP handler) ----------------------------------

    def runtime_next(self) -> Task | None:
        """Block until the engine hands out an invocation, as Lambda's ``next`` does; while
        the engine cannot be reached, keep asking (one warning, no traceback)."""
        delay = 0.0
        while not self._stopping.is_set():
            try:
                task = self.backend.next(self.config.name, self.worker_id, POLL_SECONDS)
            except Exception as exc:  # noqa: BLE001 - the engine unreachable, whatever the cause: ask again
                if not delay:
                    log.warning("%s: cannot reach the engine (%s); retrying", self.config.name, exc)
                delay = min(max(delay * 2, 0.25), 5.0)
                self._stopping.wait(delay)
                continue
            delay = 0.0
            if task is not None:
                with self._lock:
                    self._current = _Current.of(task)
                if self._on_task is not None:
                    self._on_task()
                return task
        return None

    def runtime_done(self, request_id: str, body: bytes | None, error: bool) -> bool:
        """The runtime's answer (``body`` None: it was over ``RESPONSE_LIMIT``)."""
        with self._lock:
            current = self._current
            if current is None or current.task.request_id != request_id:
                return False
            current.answered = True
        try:
            self._finish_done(current, request_id, body, error)
        finally:
            with self._lock:
                if self._current is current:
                    self._current = None
        return True

    def _finish_done(self, current: _Current, request_id: str, body: bytes | None, error: bool) -> None:
        if body is None:
            self._finish(current, lambda: self.backend.fail(self.config.name, request_id, RESPONSE_TOO_LARGE))
        elif error:
            try:
                payload = json.loads(body) if body else {}
            except ValueError:
                payload = {"errorType": "Runtime.InvalidError", "errorMessage": body[:1000].decode("utf-8", "replace")}
            self._finish(current, lambda: self.backend.fail(self.config.name, request_id, payload))
        else:
            self._finish(current, lambda: self.backend.respond(self.config.name, request_id, body))

    def runtime_init_error(self, body: bytes | None) -> None:
        try:
            self._init_error = json.loads(body) if body else {"errorType": "Runtime.Unknown"}
        except ValueError:
            self._init_error = {
                "errorType": "Runtime.InitError",
                "errorMessage": body[:1000].decode("utf-8", "replace"),
            }


def _keep(sink: InvocationLog, lines: list[dict[str, Any]]) -> None:
    for line in lines:
        sink.add(
            line["level"],
            line["message"],
            ts=line["ts_ms"] / 1000,
            tags=(line.get("operationId"), line.get("attempt"), bool(line.get("replay"))),
        )


def _relayed(ln: CapturedLine) -> dict[str, Any]:
    """A line as the engine's logs endpoint takes it: tags only when there are some."""
    line: dict[str, Any] = {"ts_ms": ln.ts_ms, "level": ln.level, "message": ln.message}
    if ln.op_id is not None:
        line["operationId"] = ln.op_id
    if ln.attempt is not None:
        line["attempt"] = ln.attempt
    if ln.replay:
        line["replay"] = True
    return line


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime killed mid-request (crash, timeout) resets its connection: expected.
        if isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def _handler_for(slot: RuntimeSlot) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are two writes: with Nagle's algorithm the body would wait
        # for the runtime's delayed ACK of the headers on its kept-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes | None:
            """The request body, or None when it is over ``RESPONSE_LIMIT`` (then read
            and thrown away in pieces, so the connection stays usable)."""
            length = int(self.headers.get("Content-Length") or 0)
            if length <= RESPONSE_LIMIT:
                return self.rfile.read(length) if length else b""
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 20))
                if not chunk:
                    break
                length -= len(chunk)
            return None

        def do_GET(self) -> None:
            if self.path != f"{RUNTIME_PREFIX}/invocation/next":
                self._reply(404, b'{"errorType": "NotFound"}')
                return
            task = slot.runtime_next()
            if task is None:
                self._reply(500, b'{"errorType": "Runtime.Stopping"}')
                return
            self._reply(
                200,
                task.event,
                {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": task.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(task.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": task.function_arn,
                    "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}",
                },
            )

        def do_POST(self) -> None:
            body = self._body()
            parts = self.path.split("/")
            if self.path == f"{RUNTIME_PREFIX}/init/error":
                slot.runtime_init_error(body)
                self._reply(202, b"{}")
            elif (
                len(parts) == 6
                and self.path.startswith(f"{RUNTIME_PREFIX}/invocation/")
                and parts[5] in ("response", "error")
            ):
                known = slot.runtime_done(parts[4], body, error=parts[5] == "error")
                if not known:
                    self._reply(400, b'{"errorType": "InvalidRequestID"}')
                elif body is None:
                    self._reply(413, _TOO_LARGE_REPLY)
                else:
                    self._reply(202, b"{}")
            else:
                self._reply(404, b'{"errorType": "NotFound"}')

    return Handler


class WorkerHost:
    """Several runtime slots per function (the function's concurrency)."""

    def __init__(
        self,
        backend: Backend,
        engine_url: str,
        region: str,
        concurrency: int = 2,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.backend = backend
        self.engine_url = engine_url
        self.region = region
        self.concurrency = max(1, concurrency)
        # What the SDK inside the runtimes signs its checkpoints with when the engine hands
        # out no key of the function's own (an engine without keys accepts any).
        self.credentials = credentials or ("durascope", "durascope")
        self.slots: dict[str, list[RuntimeSlot]] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._work = threading.Event()
        if backend.remote:
            threading.Thread(target=self._watch_engine, name="durascope-engine-watch", daemon=True).start()

    def ensure(self, config: FunctionSpec) -> list[RuntimeSlot]:
        with self._lock:
            slots = self.slots.get(config.name)
            if slots:
                return slots
            slots = [
                RuntimeSlot(
                    self.backend,
                    config,
                    self.engine_url,
                    self.region,
                    config.runtime_credentials or self.credentials,
                    on_task=self._work.set,
                )
                for _ in range(self.concurrency)
            ]
            for slot in slots:
                slot.start()
            self.slots[config.name] = slots
            return slots

    def stop(self) -> None:
        self._stopped.set()
        self._work.set()
        with self._lock:
            slots = [s for group in self.slots.values() for s in group]
            self.slots.clear()
        for slot in slots:
            slot.stop()

    def _running(self) -> dict[str, RuntimeSlot]:
        with self._lock:
            slots = [s for group in self.slots.values() for s in group]
        return {rid: s for s in slots if (rid := s.running) is not None}

    def _watch_engine(self) -> None:
        """A remote engine that died cannot stop the runtimes working for it: ask it, while
        any invocation runs here, which of them it still waits for. A parked question
        also ends the moment the engine's process does (its connection closes)."""
        lost_since: float | None = None
        refused = False
        while not self._stopped.is_set():
            running = self._running()
            if not running:
                self._work.wait(1.0)
                self._work.clear()
                continue
            try:
                gone = self.backend.gone(sorted(running), WATCH_SECONDS)
                why = "its engine no longer waits for it"
                lost_since = None
            except EngineRefused as exc:
                # Alive but not answering the question (an older engine, say): no reason
                # to stop anything; ask again later.
                if not refused:
                    log.warning("the engine does not say which invocations it waits for: %s", exc)
                refused = True
                lost_since = None
                self._stopped.wait(WATCH_SECONDS)
                continue
            except Exception as exc:  # noqa: BLE001 - unreachable, reset, timed out: the same here
                now = time.monotonic()
                lost_since = lost_since or now
                if now - lost_since < ENGINE_LOST_SECONDS:
                    self._stopped.wait(0.25)
                    continue
                running = self._running()
                gone = list(running)
                why = f"its engine has been unreachable for {ENGINE_LOST_SECONDS:g} s ({exc})"
            for request_id in gone:
                slot = running.get(request_id)
                if slot is not None:
                    slot.abandon(request_id, why)


def run_worker(
    engine_url: str, functions: list[str] | None, concurrency: int, region: str, insecure: bool = False
) -> None:
    """``durascope worker``: serve the named functions (or all registered) until SIGTERM.
    Credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, as for any AWS client."""
    require_secure_engine(engine_url, insecure)
    key_id, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    credentials = (key_id, secret) if key_id and secret else None
    backend = HttpBackend(engine_url, credentials, region)
    known = {f.name: f for f in backend.functions()}
    wanted = functions or sorted(known)
    missing = [f for f in wanted if f not in known]
    if missing:
        raise ValueError(f"the engine at {engine_url} has no function {', '.join(missing)}")
    host = WorkerHost(backend, engine_url, region, concurrency, credentials)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    for name in wanted:
        host.ensure(known[name])
    print(
        f"worker serving {', '.join(wanted)} for {engine_url} ({concurrency} runtime(s) each)",
        file=sys.stderr,
        flush=True,
    )
    stopped.wait()
    host.stop()
