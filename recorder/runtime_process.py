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
* **Its output** (stdout and stderr, one pipe) is read without blocking and cut into
  lines (``Output``).
"""

from __future__ import annotations

import os
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
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
)
# Unreserved: Lambda sets them, the function may override them. Lambda's values name its
# own file system (PATH=/usr/local/bin:/usr/bin/:/bin:/opt/bin, LANG=en_US.UTF-8, ...);
# here the ones a process needs to start take this host's values (``HOST_VALUED``).
LAMBDA_UNRESERVED = (
    "LANG", "PATH", "LD_LIBRARY_PATH", "NODE_PATH", "PYTHONPATH", "GEM_PATH",
    "AWS_XRAY_CONTEXT_MISSING", "AWS_XRAY_DAEMON_ADDRESS", "AWS_LAMBDA_DOTNET_PREJIT", "TZ",
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


def lambda_environment(spec: RuntimeSpec, host_env: dict[str, str] | None = None) -> dict[str, str]:
    """The runtime's whole environment: the host's values for ``HOST_VALUED``, then the
    function's variables, then what Lambda reserves (which the function cannot override)."""
    host = os.environ if host_env is None else host_env
    env = {k: host[k] for k in HOST_VALUED if host.get(k)}
    env["TZ"] = ":UTC"
    env.update({k: v for k, v in spec.function_env.items() if k not in LAMBDA_RESERVED})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (spec.code_dir, env.get("PYTHONPATH", "")) if p)
    env.update({
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
    })
    return env


# Run by the new interpreter before awslambdaric: tie its life to the parent, then hand
# over to the runtime interface client as ``python -m awslambdaric HANDLER`` would.
# argv: parent pid, pipe fd, handler. Inline, so the handler's interpreter imports
# nothing of Durascope.
_BOOTSTRAP = """\
import os, runpy, signal, sys, threading
parent, fd, handler = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
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
sys.argv = ["awslambdaric", handler]
runpy.run_module("awslambdaric", run_name="__main__", alter_sys=True)
"""


class RuntimeProcess:
    """A started runtime: the process, its output and the pipe that ties it to us.
    Start it from a thread that lives as long as the runtime should (the kernel's
    parent-death signal follows the starting thread, not the process)."""

    def __init__(self, spec: RuntimeSpec) -> None:
        lifeline_read, self._lifeline = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(os.getpid()), str(lifeline_read), spec.handler],
                env=lambda_environment(spec), cwd=spec.code_dir, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(lifeline_read,),
                # Its own process group, so a timeout kills what the handler started too.
                start_new_session=True)
        except BaseException:
            os.close(self._lifeline)
            raise
        finally:
            os.close(lifeline_read)
        assert self.proc.stdout is not None
        self.output = Output(self.proc.stdout)

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


class Output:
    """A runtime's stdout and stderr (one pipe), cut into lines without blocking.

    Callers serialize ``drain`` (the worker host holds its slot's lock), so each line
    is taken once. Only one thread closes the pipe, after the end of the output, so a
    ``poll`` never sees a reused descriptor.
    """

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self._fd = pipe.fileno()
        os.set_blocking(self._fd, False)
        self._partial = b""
        self.ended = False

    def wait_readable(self) -> None:
        """Block until there is output or the end of it (which stays readable). ``poll``,
        not ``select``: an engine with many runtimes and connections has descriptors
        above ``select``'s 1,024."""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.poll()

    def close(self) -> None:
        self._pipe.close()

    def drain(self, final: bool = False) -> list[dict[str, Any]]:
        """The complete lines in the pipe now (at most about 1 MiB of them: the rest
        stays for the next call); with ``final`` (or at the end of the output) also a
        last one without a newline."""
        chunks = [self._partial]
        taken = 0
        while not self.ended and taken < _MAX_READ:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            if not data:
                self.ended = True
                break
            chunks.append(data)
            taken += len(data)
        *complete, self._partial = b"".join(chunks).split(b"\n")
        if (final or self.ended or len(self._partial) > MAX_LINE_CHARS) and self._partial:
            complete.append(self._partial)
            self._partial = b""
        now = int(time.time() * 1000)
        return [_line(raw[:MAX_LINE_CHARS], now) for raw in complete]


def _line(raw: bytes, ts_ms: int) -> dict[str, Any]:
    text = raw.decode("utf-8", "replace")
    level = "STDOUT"
    for marker in _LEVELS:
        if text.startswith(marker):
            level = marker.strip("[]")
            break
    return {"ts_ms": ts_ms, "level": level, "message": text}
