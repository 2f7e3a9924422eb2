"""A runtime process: its environment, its lifetime and its output.

A worker host (``recorder.worker``) starts one ``awslambdaric`` process per runtime slot.
Three things about that process live here:

* **Its environment is Lambda's**, not the host's: the variables Lambda defines for every
  function (``LAMBDA_DEFINED``), the function's own variables, and nothing else of the
  engine's environment (which holds database URLs, access keys and whatever else the
  operator exported).
* **It does not outlive its parent** (the engine that started it, or the ``durascope
  worker`` host): on Linux the kernel kills it when the thread that started it ends
  (``PR_SET_PDEATHSIG``); everywhere it also holds the read end of a pipe whose write
  end only the parent has, and kills its process group when that pipe reaches its end
  (the parent is gone, however it died). Without either, a runtime whose engine was
  SIGKILLed mid-invocation waited forever for a response nobody would read.
* **Its output** is read without blocking and cut into lines (``Output``), with the tags
  in-process lines carry (``recorder.engine.logs``): the operation running when a line was
  written, its attempt, and whether the SDK was replaying. See TAGGED OUTPUT.

TAGGED OUTPUT. At bootstrap the runtime loads ``recorder/engine/logs.py`` (by its path,
under a private name) and calls its ``relay``: the same hooks on the SDK as in-process
capture, and ``sys.stdout``/``sys.stderr`` replaced so that everything Python code writes
(``print``, and ``awslambdaric``'s log records, which it writes to ``sys.stdout``) goes,
chunk by chunk as written, to a pipe of its own: one JSON frame a line,
``{"t": ms, "s": "STDOUT"|"STDERR", "m": text, "o": operation id, "a": attempt, "r": replay}``.
The host puts lines together from the chunks (``_Assembly``). The plain stdout/stderr
pipe stays for what bypasses Python's streams (a subprocess, a C library, ``os.write(1,
...)``), stored untagged as before.

Why a pipe of its own rather than a marker inside stdout: no text on stdout or stderr can
ever be taken for a frame, so a handler that prints a frame-like line, or runs a program
that does (another runtime, say), stores just that text. The frames' write end is passed to
the runtime only, not inheritable by what it starts. Code in the handler can still write to
that descriptor (nothing inside a process stops its own code), but what it can forge is
bounded: every line is attributed to the invocation the runtime is running, whatever a frame
says, so it can only mislabel its own execution's lines; tags are checked for shape
(``parse_tags``) here and again by the engine; a line that is not a valid frame is stored as
its plain text, untagged. Frames of one runtime keep their order; against the plain pipe the
order is by time (a plain line's time is when the host read it).
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

# What Lambda sets in every function's environment, from the AWS Lambda Developer Guide,
# "Defined runtime environment variables"
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
# Reserved: the function cannot set these.
LAMBDA_RESERVED = (
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
)
# Unreserved: Lambda sets them, the function may override them. Lambda's values name its
# own file system (PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin, LANG=en_US.UTF-8, ...);
# here the ones a process needs to start take this host's values (``HOST_VALUED``).
LAMBDA_UNRESERVED = (
    "LANG",
    "PATH",
    "LD_LIBRARY_PATH",
    "NODE_PATH",
    "PYTHONPATH",
    "GEM_PATH",
    "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS",
    "AWS_LAMBDA_DOTNET_PREJIT",
    "TZ",
)
HOST_VALUED = ("LANG", "PATH", "LD_LIBRARY_PATH", "PYTHONPATH")
# Ours, beyond Lambda's: where the SDK checkpoints (the engine), and unbuffered output so
# each line is read while the invocation that wrote it is still the current one.
DURASCOPE_ADDED = ("AWS_ENDPOINT_URL_LAMBDA", "AWS_LAMBDA_FUNCTION_TIMEOUT", "PYTHONUNBUFFERED")

# A runtime's output buffered per invocation is capped like in-process output
# (recorder.engine.logs): a line without a newline is cut at this size, and one read
# of the pipe takes at most this much, so a runtime printing without pause cannot make
# its host buffer without bound.
MAX_LINE_CHARS = 64 * 1024
_MAX_READ = 1024 * 1024
_LEVELS = ("[DEBUG]", "[INFO]", "[WARNING]", "[ERROR]", "[CRITICAL]")
# The tagged channel: a runtime writes a chunk of at most FRAME_CHARS characters a frame,
# ASCII-only JSON (a character takes at most 12 bytes), so a frame of an honest runtime is
# under FRAME_BYTES; a longer line is not one of its frames.
FRAME_CHARS = 16 * 1024
FRAME_BYTES = 12 * FRAME_CHARS + 256
# The shape of a tag: the SDK's operation ids are 64 hex digits.
_OPERATION_ID = re.compile(r"[0-9A-Za-z_.:-]{1,128}")
MAX_ATTEMPT = 1_000_000
# (operation id, attempt, written while the SDK replayed)
Tags = tuple[str | None, int | None, bool]
UNTAGGED: Tags = (None, None, False)


@dataclass(frozen=True)
class RuntimeSpec:
    """Everything a runtime process is started from."""

    handler: str  # Lambda's module.function
    function_name: str
    code_dir: str
    memory_mb: int
    timeout: int
    function_env: dict[str, str]
    runtime_api: str  # host:port of the slot's Runtime API
    region: str
    credentials: tuple[str, str]
    engine_url: str
    # The file of ``recorder.engine.logs`` (its ``relay``), loaded in the runtime to tag its
    # output; None: plain output only.
    tagger: str | None = None


def lambda_environment(spec: RuntimeSpec, host_env: dict[str, str] | None = None) -> dict[str, str]:
    """The runtime's whole environment: the host's values for ``HOST_VALUED``, then the
    function's variables, then what Lambda reserves (which the function cannot override)."""
    host = os.environ if host_env is None else host_env
    env = {k: host[k] for k in HOST_VALUED if host.get(k)}
    env["TZ"] = ":UTC"
    env.update({k: v for k, v in spec.function_env.items() if k not in LAMBDA_RESERVED})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (spec.code_dir, env.get("PYTHONPATH", "")) if p)
    env.update(
        {
            "_HANDLER": spec.handler,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "durascope",
            "AWS_ACCESS_KEY_ID": spec.credentials[0],
            "AWS_ACCESS_KEY": spec.credentials[0],
            "AWS_SECRET_ACCESS_KEY": spec.credentials[1],
            "AWS_LAMBDA_RUNTIME_API": spec.runtime_api,
            "LAMBDA_TASK_ROOT": spec.code_dir,
            "LAMBDA_RUNTIME_DIR": os.path.dirname(os.path.dirname(os.__file__)),
            "AWS_ENDPOINT_URL_LAMBDA": spec.engine_url,
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


# Run by the new interpreter before awslambdaric: tie its life to the parent, route its
# Python output through the tagged channel (``TAGGED OUTPUT`` above), then hand over to
# the runtime interface client as ``python -m awslambdaric HANDLER`` would.
# argv: parent pid, lifeline fd, frames fd (-1: none), path of recorder/engine/logs.py,
# handler. Inline, and logs.py is loaded by its path under a private name, so no package
# of Durascope is importable in (or shadows a module of) the handler's interpreter.
_BOOTSTRAP = """\
import os, runpy, signal, sys, threading
parent, fd, frames, tagger, handler = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
if sys.platform.startswith("linux"):
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
if os.getppid() != parent:  # the parent died before the line above
    os._exit(1)
def _watch():
    while True:
        try:
            if not os.read(fd, 64):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    os.killpg(os.getpgid(0), signal.SIGKILL)
threading.Thread(target=_watch, name="durascope-parent-watch", daemon=True).start()
def _relay_output():
    import importlib.util, json, time
    os.set_inheritable(frames, False)  # the handler's own subprocesses do not get it
    spec = importlib.util.spec_from_file_location("_durascope_logs", tagger)
    logs = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = logs
    spec.loader.exec_module(logs)
    lock = threading.Lock()
    def emit(stream, text, op, attempt, replay):
        now = int(time.time() * 1000)
        data = "".join(json.dumps({"t": now, "s": stream, "m": text[i:i + FRAME_CHARS], "o": op, "a": attempt,
                                   "r": replay}) + "\\n" for i in range(0, len(text), FRAME_CHARS)).encode()
        with lock:
            try:
                while data:
                    data = data[os.write(frames, data):]
            except OSError:  # the channel is gone: plain output, untagged
                os.write(2 if stream == "STDERR" else 1, text.encode("utf-8", "replace"))
    logs.relay(emit)
if frames >= 0:
    try:
        _relay_output()
    except Exception:  # untagged output, as without the channel
        pass
sys.argv = ["awslambdaric", handler]
runpy.run_module("awslambdaric", run_name="__main__", alter_sys=True)
""".replace("FRAME_CHARS", str(FRAME_CHARS))


class RuntimeProcess:
    """A started runtime: the process, its output and the pipe that ties it to us.
    Start it from a thread that lives as long as the runtime should (the kernel's
    parent-death signal follows the starting thread, not the process)."""

    def __init__(self, spec: RuntimeSpec) -> None:
        lifeline_read, self._lifeline = os.pipe()
        frames_read, frames_write = os.pipe() if spec.tagger else (-1, -1)
        passed = (lifeline_read, frames_write) if spec.tagger else (lifeline_read,)
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _BOOTSTRAP,
                    str(os.getpid()),
                    str(lifeline_read),
                    str(frames_write),
                    spec.tagger or "",
                    spec.handler,
                ],
                env=lambda_environment(spec),
                cwd=spec.code_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=passed,
                # Its own process group, so a timeout kills what the handler started too.
                start_new_session=True,
            )
        except BaseException:
            os.close(self._lifeline)
            if frames_read >= 0:
                os.close(frames_read)
            raise
        finally:
            os.close(lifeline_read)
            if frames_write >= 0:
                os.close(frames_write)
        assert self.proc.stdout is not None
        self.output = Output(self.proc.stdout, frames_read if frames_read >= 0 else None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill_group(self) -> None:
        """SIGKILL the runtime and whatever it started (its process group)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def reaped(self) -> None:
        """After the runtime has exited: let go of the pipe that tied it to us."""
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1


class _Pipe:
    """One pipe of a runtime's output, cut into byte lines without blocking."""

    def __init__(self, fd: int, line_cap: int) -> None:
        self.fd = fd
        self.line_cap = line_cap
        os.set_blocking(fd, False)
        self._partial = b""
        self.ended = False

    def lines(self, final: bool) -> list[bytes]:
        """The complete lines in the pipe now (at most about 1 MiB of them: the rest stays
        for the next call); with ``final`` (or at the end) also a last one without a
        newline, as is one over ``line_cap``."""
        chunks = [self._partial]
        taken = 0
        while not self.ended and taken < _MAX_READ:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not data:
                self.ended = True
                break
            chunks.append(data)
            taken += len(data)
        *complete, self._partial = b"".join(chunks).split(b"\n")
        if (final or self.ended or len(self._partial) > self.line_cap) and self._partial:
            complete.append(self._partial)
            self._partial = b""
        return complete


class _Assembly:
    """Lines of one stream put together from its tagged chunks: a line carries the time
    and tags of its first chunk (``print`` writes its text and its newline apart)."""

    def __init__(self) -> None:
        self.text = ""
        self.ts_ms = 0
        self.tags: Tags = UNTAGGED

    def feed(self, ts_ms: int, text: str, tags: Tags) -> list[tuple[int, str, Tags]]:
        out = []
        while text:
            if not self.text:
                self.ts_ms, self.tags = ts_ms, tags
            head, newline, text = text.partition("\n")
            self.text += head
            if newline or len(self.text) > MAX_LINE_CHARS:
                out.append((self.ts_ms, self.text[:MAX_LINE_CHARS], self.tags))
                self.text = ""
        return out

    def rest(self) -> list[tuple[int, str, Tags]]:
        rest, self.text = self.text, ""
        return [(self.ts_ms, rest, self.tags)] if rest else []


class Output:
    """A runtime's output, cut into lines without blocking: the tagged channel (when the
    runtime has one) and the plain pipe (stdout and stderr).

    Callers serialize ``drain`` (the worker host holds its slot's lock), so each line
    is taken once. Only one thread closes the pipes, after the end of the output, so a
    ``poll`` never sees a reused descriptor.
    """

    def __init__(self, pipe: Any, frames_fd: int | None = None) -> None:
        self._pipe = pipe
        self._plain = _Pipe(pipe.fileno(), MAX_LINE_CHARS)
        self._frames = _Pipe(frames_fd, FRAME_BYTES) if frames_fd is not None else None
        self._streams = {"STDOUT": _Assembly(), "STDERR": _Assembly()}

    @property
    def ended(self) -> bool:
        return self._plain.ended and (self._frames is None or self._frames.ended)

    def _open(self) -> list[_Pipe]:
        return [p for p in (self._plain, self._frames) if p is not None and not p.ended]

    def wait_readable(self) -> None:
        """Block until there is output or the end of it (which stays readable). ``poll``,
        not ``select``: an engine with many runtimes and connections has descriptors
        above ``select``'s 1,024."""
        pipes = self._open()
        if not pipes:
            return
        poller = select.poll()
        for p in pipes:
            poller.register(p.fd, select.POLLIN)
        poller.poll()

    def close(self) -> None:
        self._pipe.close()
        if self._frames is not None:
            os.close(self._frames.fd)

    def drain(self, final: bool = False) -> list[dict[str, Any]]:
        """The complete lines in the pipes now; with ``final`` (or at the end of the
        output) also the last ones without a newline. Lines of both pipes come in the
        order they were written as far as their times tell (a plain line's time is when
        it was read: it carries none)."""
        now = int(time.time() * 1000)
        lines = [_line(raw[:MAX_LINE_CHARS].decode("utf-8", "replace"), now) for raw in self._plain.lines(final)]
        if self._frames is not None:
            for raw in self._frames.lines(final):
                frame = _frame(raw)
                if frame is None:  # not a frame of ours: kept as the text it is
                    lines.append(_line(raw[:MAX_LINE_CHARS].decode("utf-8", "replace"), now))
                    continue
                ts_ms, stream, text, tags = frame
                lines += [_line(t, ts, stream, tg) for ts, t, tg in self._streams[stream].feed(ts_ms, text, tags)]
            if final or self._frames.ended:
                lines += [
                    _line(t, ts, stream, tg)
                    for stream, assembly in self._streams.items()
                    for ts, t, tg in assembly.rest()
                ]
        return sorted(lines, key=lambda ln: ln["ts_ms"])


def _frame(raw: bytes) -> tuple[int, str, str, Tags] | None:
    """A frame of the tagged channel, or None when ``raw`` is not one."""
    try:
        f = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(f, dict):
        return None
    ts, stream, text = f.get("t"), f.get("s"), f.get("m")
    if type(ts) is not int or stream not in ("STDOUT", "STDERR") or not isinstance(text, str):
        return None
    # Lone surrogates (JSON escapes of U+D800..U+DFFF) cannot be stored as UTF-8.
    text = text.encode("utf-8", "replace").decode("utf-8")
    return ts, stream, text, parse_tags(f.get("o"), f.get("a"), f.get("r"))


def parse_tags(op: Any, attempt: Any, replay: Any) -> Tags:
    """A line's (operation id, attempt, replay) from untrusted input: what is not of the
    right shape is left out."""
    op_id = op if isinstance(op, str) and _OPERATION_ID.fullmatch(op) else None
    return (
        op_id,
        attempt if op_id is not None and type(attempt) is int and 1 <= attempt <= MAX_ATTEMPT else None,
        replay is True,
    )


def _line(text: str, ts_ms: int, stream: str = "STDOUT", tags: Tags = UNTAGGED) -> dict[str, Any]:
    level = stream
    for marker in _LEVELS:
        if text.startswith(marker):
            level = marker.strip("[]")
            break
    line: dict[str, Any] = {"ts_ms": ts_ms, "level": level, "message": text}
    op, attempt, replay = tags
    if op is not None:
        line["operationId"] = op
    if attempt is not None:
        line["attempt"] = attempt
    if replay:
        line["replay"] = True
    return line
