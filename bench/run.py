"""Durascope vs the SDK's local test runner on the issue's workloads.

    python bench/run.py                                   # every workload on every system, 3 repeats
    python bench/run.py --workload W1,W2 --systems durascope-sqlite,peer-sqlite --repeat 5
    python bench/run.py --one durascope-sqlite W1         # one run, for timing whole processes
    python bench/run.py --json /tmp/bench.json            # also write every figure as JSON

Systems:
    durascope-sqlite  Durascope on a fresh SQLite file (a new file per repeat)
    durascope-pg      Durascope on a fresh PostgreSQL database (created per repeat from the
                      `test` database with psycopg autocommit, dropped afterwards);
                      server from --pg-server, else that of DURASCOPE_BENCH_PG (a libpq URL,
                      as for every script here; default postgres@127.0.0.1:5432)
    peer-memory       aws-durable-execution-sdk-python-testing DurableFunctionTestRunner,
                      its default InMemoryExecutionStore
    peer-sqlite       the same runner with SQLiteExecutionStore (a new file per repeat)
    sdk-alone         (reference, only when named) the SDK with a service client that answers
                      at once and stores nothing, on 64 threads of one interpreter
    invoker-alone     (reference, only when named) Durascope's process invoker with a control
                      plane that answers at once and stores nothing

Each (system, workload) cell runs in its own child interpreter (Durascope installs
process-wide logging hooks; a fresh process keeps systems from affecting each other).
Every figure is measured inside that process with time.perf_counter from just before the
first start call to the moment the client sees the (last) execution terminal. Store
set-up (schema creation, function registration) is outside the timed span; so is one
untimed warm-up execution per fresh store (imports, handler and SQL caches), unless
--no-warmup or --one. Every result is checked against the expected output.

The exit status is 0 whatever the figures are (a failed run is reported in the table).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import scratch
import workloads

SYSTEMS = ["durascope-sqlite", "durascope-pg", "peer-memory", "peer-sqlite", "sdk-alone", "invoker-alone"]
# Floors for what any engine could reach, not systems compared: run only when named.
REFERENCE_SYSTEMS = ("sdk-alone", "invoker-alone")
WORKLOAD_NAMES = list(workloads.WORKLOADS)

# The issue's reference figures for the peer on this machine, used only when the
# peer was not run in the same invocation.
REFERENCE = {("peer-sqlite", "W1"): 11.6, ("peer-memory", "W1"): 1.9}

# Durascope's client waits with Durascope.wait, which the engine wakes when it commits
# the close (recorder/engine/closings.py), as the peer's wait_for_result blocks on an
# event: no polling cost in the engine's process, no lateness.
RUN_TIMEOUT = 600.0


@dataclass
class Run:
    seconds: float
    server_seconds: float | None = None  # Durascope only: first start -> last end_ms stored


@dataclass
class Cell:
    system: str
    workload: str
    runs: list[Run] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(r.seconds for r in self.runs) if self.runs else None

    def spec(self) -> dict[str, Any]:
        return workloads.WORKLOADS[self.workload]

    def per_step_ms(self) -> float | None:
        m = self.median
        if m is None:
            return None
        spec = self.spec()
        return m * 1000 / (spec["steps"] * spec["executions"])

    def per_second(self) -> float | None:
        m = self.median
        return None if m is None else self.spec()["executions"] / m


# --- systems ------------------------------------------------------------------------------


class System:
    name = ""

    def setup(self) -> None: ...

    def run(self, workload: str) -> Run:
        raise NotImplementedError

    def teardown(self) -> None: ...


def _check(workload: str, result: Any) -> None:
    value = json.loads(result) if isinstance(result, (str, bytes)) else result
    if value != workloads.EXPECTED[workload]:
        raise AssertionError(f"{workload}: unexpected result {value!r}")


class DurascopeSystem(System):
    def __init__(self, name: str, pg_server: str, settings: dict[str, Any] | None = None) -> None:
        self.name = name
        self.pg_server = pg_server
        self.settings = dict(settings or {})
        self.ds: Any = None
        self._tmp: str | None = None
        self._pg_db: str | None = None

    def _url(self) -> str:
        if self.name == "durascope-sqlite":
            self._tmp = tempfile.mkdtemp(prefix="durascope-bench-")
            return f"sqlite:///{self._tmp}/bench.db"
        self._pg_db, url = scratch.create_pg(f"dsbench_{os.getpid()}", scratch.admin_of(self.pg_server))
        return url

    def setup(self) -> None:
        from recorder.api import Durascope

        self.ds = Durascope.open(self._url(), **self.settings)
        for handler in {spec["handler"] for spec in workloads.WORKLOADS.values()}:
            self.ds.register_function(handler, f"workloads:{handler}", code_dir=str(BENCH_DIR))

    def run(self, workload: str) -> Run:
        spec = workloads.WORKLOADS[workload]
        payload = json.dumps(spec["payload"])
        count = spec["executions"]
        wall0 = time.time()
        t0 = time.perf_counter()
        arns = [self.ds.start(spec["handler"], payload) for _ in range(count)]
        deadline = t0 + RUN_TIMEOUT
        summaries = [self.ds.wait(arn, max(0.0, deadline - time.perf_counter())) for arn in arns]
        elapsed = time.perf_counter() - t0
        for s in summaries:
            if s.status != "SUCCEEDED":
                raise AssertionError(f"{s.arn} ended {s.status}: {s.error}")
            _check(workload, s.result)
        last_end = max(s.end_ms or 0 for s in summaries) / 1000
        return Run(elapsed, max(0.0, last_end - wall0))

    def teardown(self) -> None:
        if self.ds is not None:
            self.ds.close()
            self.ds = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if self._pg_db:
            scratch.drop_pg(self._pg_db, scratch.admin_of(self.pg_server))
            self._pg_db = None


class PeerSystem(System):
    """DurableFunctionTestRunner; one runner per handler (the runner takes one root handler)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.runners: dict[str, Any] = {}
        self._tmp: str | None = None

    def _runner(self, handler: str) -> Any:
        runner = self.runners.get(handler)
        if runner is None:
            from aws_durable_execution_sdk_python_testing.runner import DurableFunctionTestRunner

            store = None
            if self.name == "peer-sqlite":
                from aws_durable_execution_sdk_python_testing.stores.sqlite import SQLiteExecutionStore

                if self._tmp is None:
                    self._tmp = tempfile.mkdtemp(prefix="peer-bench-")
                store = SQLiteExecutionStore.create_and_initialize(Path(self._tmp) / f"{handler}.db")
            runner = DurableFunctionTestRunner(handler=getattr(workloads, handler), store=store)
            self.runners[handler] = runner
        return runner

    def setup(self) -> None:
        for handler in {spec["handler"] for spec in workloads.WORKLOADS.values()}:
            self._runner(handler)

    def run(self, workload: str) -> Run:
        spec = workloads.WORKLOADS[workload]
        runner = self._runner(spec["handler"])
        payload = json.dumps(spec["payload"])
        t0 = time.perf_counter()
        # run_async returns once the execution is saved and its first invocation is
        # queued on the runner's invocation pool; W4 starts all 100 this way, then
        # waits for each in turn.
        arns = [
            runner.run_async(
                input=payload, execution_timeout=int(RUN_TIMEOUT), execution_name=f"bench-{uuid.uuid4().hex[:12]}"
            )
            for _ in range(spec["executions"])
        ]
        results = [runner.wait_for_result(arn, timeout=int(RUN_TIMEOUT)) for arn in arns]
        elapsed = time.perf_counter() - t0
        for r in results:
            if r.status.value != "SUCCEEDED":
                raise AssertionError(f"peer execution ended {r.status}: {r.error}")
            _check(workload, r.result)
        return Run(elapsed)

    def teardown(self) -> None:
        for runner in self.runners.values():
            runner.close()
        self.runners.clear()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


class _ReferenceSystem(System):
    """A reference system: each execution is one invocation made directly, the W4 ones on
    64 threads at once (as Durascope's engine runs them), timed from the first to the last."""

    def _invoke(self, handler: str, payload: str) -> Any:
        raise NotImplementedError

    def run(self, workload: str) -> Run:
        from concurrent.futures import ThreadPoolExecutor

        spec = workloads.WORKLOADS[workload]
        payload = json.dumps(spec["payload"])
        with ThreadPoolExecutor(64) as pool:
            t0 = time.perf_counter()
            results = list(pool.map(lambda _: self._invoke(spec["handler"], payload), range(spec["executions"])))
            elapsed = time.perf_counter() - t0
        for result in results:
            _check(workload, result)
        return Run(elapsed)


class SdkAloneSystem(_ReferenceSystem):
    """The SDK with nothing behind it: each invocation's service client answers every
    checkpoint at once and stores nothing, so the figure is what the SDK itself costs on
    this machine, a floor for any engine that runs it (not a goal, and not in the default
    set of systems). W4 runs the 100 executions on 64 threads of one interpreter, as
    Durascope's default invoker does."""

    name = "sdk-alone"

    class _NullClient:
        def checkpoint(
            self, durable_execution_arn: str, checkpoint_token: str, updates: list[Any], client_token: str | None = None
        ) -> Any:
            from aws_durable_execution_sdk_python.lambda_service import CheckpointOutput

            return CheckpointOutput.from_dict(
                {"CheckpointToken": checkpoint_token, "NewExecutionState": {"Operations": []}}
            )

        def get_execution_state(self, *args: Any, **kwargs: Any) -> Any:
            from aws_durable_execution_sdk_python.lambda_service import StateOutput

            return StateOutput.from_dict({"Operations": []})

    def _invoke(self, handler: str, payload: str) -> Any:
        import datetime

        from aws_durable_execution_sdk_python.execution import (
            DurableExecutionInvocationInputWithClient,
            InitialExecutionState,
        )
        from aws_durable_execution_sdk_python.lambda_service import Operation

        from recorder.engine.invoker import LambdaContext

        execution_id = str(uuid.uuid4())
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:bench:$LATEST/durable-execution/x/{execution_id}"
        # The SDK finds its input on the operation named by the ARN's last segment.
        op = Operation.from_dict(
            {
                "Id": execution_id,
                "Type": "EXECUTION",
                "Status": "STARTED",
                "StartTimestamp": datetime.datetime.now(datetime.UTC),
                "ExecutionDetails": {"InputPayload": payload},
            }
        )
        event = DurableExecutionInvocationInputWithClient(
            durable_execution_arn=arn,
            checkpoint_token="t",
            initial_execution_state=InitialExecutionState(operations=[op], next_marker=""),
            updated_operation_ids=[],
            service_client=self._NullClient(),
        )
        context = LambdaContext(str(uuid.uuid4()), "bench", "$LATEST", arn, 512, int(time.time() * 1000) + 900_000)
        out = getattr(workloads, handler)(event, context)
        if out.get("Status") != "SUCCEEDED":
            raise AssertionError(f"the SDK alone ended {out}")
        return out.get("Result")


class InvokerAloneSystem(_ReferenceSystem):
    """Durascope's process invoker with a control plane that answers every call at once and
    stores nothing: the handler runs in ``invoker_processes`` child interpreters (default
    1; ``--ds-setting invoker_processes=N``) exactly as with Durascope, and each checkpoint
    travels to this process and back over the pipe. So the figure is what the SDK plus the
    invoker's messages cost, the most any store behind that invoker could reach on this
    machine (a reference like sdk-alone, not a goal). W4 runs on 64 threads, as the
    engine's pool does."""

    name = "invoker-alone"

    class _NullControl:
        def __init__(self) -> None:
            from types import SimpleNamespace

            self.settings = SimpleNamespace(max_concurrent_invocations=64)
            self.db = SimpleNamespace(is_sqlite=True)  # serve on the pipe's reader thread

        def checkpoint(
            self, arn: str, token: str, updates: list[Any], client_token: str | None, ts: Any = None
        ) -> dict[str, Any]:
            return {"CheckpointToken": token, "NewExecutionState": {"Operations": []}}

        def get_state(self, *args: Any, ts: Any = None) -> dict[str, Any]:
            return {"Operations": []}

        def function_arn(self, name: str, version: str) -> str:
            return f"arn:aws:lambda:us-east-1:123456789012:function:{name}"

        def store_logs(self, *args: Any) -> None:
            pass

    def setup(self) -> None:
        from recorder.engine.processes import ProcessInvoker

        self.invoker = ProcessInvoker(self._NullControl(), int(DS_SETTINGS.get("invoker_processes", 1)))

    def teardown(self) -> None:
        self.invoker.close()

    def _invoke(self, handler: str, payload: str) -> Any:
        from recorder.engine.control import FunctionSpec, InvocationInput

        execution_id = str(uuid.uuid4())
        arn = f"arn:aws:lambda:us-east-1:123456789012:function:{handler}:$LATEST/durable-execution/x/{execution_id}"
        now = int(time.time() * 1000)
        op = {
            "Id": execution_id,
            "Type": "EXECUTION",
            "Status": "STARTED",
            "StartTimestamp": now,
            "ExecutionDetails": {"InputPayload": payload},
        }
        function = FunctionSpec(name=handler, handler=f"workloads:{handler}", code_dir=str(BENCH_DIR))
        out = self.invoker.invoke(
            InvocationInput(
                execution_id=execution_id,
                arn=arn,
                request_id=str(uuid.uuid4()),
                token="t",
                operations=[op],
                next_marker="",
                updated_operation_ids=[],
                function=function,
                start_ms=now,
            )
        )
        if out.status != "SUCCEEDED":
            raise AssertionError(f"the invoker alone ended {out}")
        return out.result


# Durascope settings given with --ds-setting KEY=VALUE (passed to Durascope.open).
DS_SETTINGS: dict[str, Any] = {}


def parse_setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--ds-setting takes KEY=VALUE, got {text!r}")
    for conv in (int, float):
        try:
            return key, conv(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(value.lower(), value)


def make_system(name: str, pg_server: str) -> System:
    if name.startswith("durascope-"):
        return DurascopeSystem(name, pg_server, DS_SETTINGS)
    if name == SdkAloneSystem.name:
        return SdkAloneSystem()
    if name == InvokerAloneSystem.name:
        return InvokerAloneSystem()
    return PeerSystem(name)


def measure(system_name: str, workload: str, repeat: int, warmup: bool, pg_server: str, verbose: bool = True) -> Cell:
    cell = Cell(system_name, workload)
    for i in range(repeat):
        system = make_system(system_name, pg_server)
        try:
            system.setup()
            if warmup:
                _warm(system)
            run = system.run(workload)
            cell.runs.append(run)
            if verbose:
                extra = f" (stored end: {run.server_seconds:.3f} s)" if run.server_seconds is not None else ""
                print(
                    f"  {system_name:17} {workload:5} run {i + 1}/{repeat}: {run.seconds:.3f} s{extra}",
                    file=sys.stderr,
                    flush=True,
                )
        except Exception as exc:  # noqa: BLE001 - report and go on
            cell.errors.append(f"{type(exc).__name__}: {exc}")
            if verbose:
                print(f"  {system_name:17} {workload:5} run {i + 1}/{repeat}: FAILED {exc}", file=sys.stderr)
                traceback.print_exc(limit=3, file=sys.stderr)
        finally:
            try:
                system.teardown()
            except Exception as exc:  # noqa: BLE001 - reported; the next cell runs
                print(f"  teardown of {system_name} failed: {exc}", file=sys.stderr)
    return cell


def _warm(system: System) -> None:
    """One small untimed execution: imports, handler caches, SQL compilation caches."""
    workloads.WORKLOADS["_warm"] = {"handler": "sequential", "payload": {"n": 3}, "steps": 3, "executions": 1}
    workloads.EXPECTED["_warm"] = {"n": 3, "total": 6}
    try:
        system.run("_warm")
    finally:
        workloads.WORKLOADS.pop("_warm", None)
        workloads.EXPECTED.pop("_warm", None)


CELL_MARK = "@@cell "


def tree_state() -> str:
    """The commit of the Durascope checkout measured, and whether recorder/ had local edits."""
    repo = BENCH_DIR.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "recorder"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head or 'unknown'}{' + uncommitted changes in recorder/' if dirty else ''}"


def measure_in_child(system: str, workload: str, args: argparse.Namespace) -> Cell:
    """Run one cell in a fresh interpreter.

    Durascope installs process-wide hooks (log routing wraps threading.Thread.start and the
    root logger), and every system leaves threads behind; a child process per cell keeps
    one system from taxing the next.
    """
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--cell",
        system,
        workload,
        "--repeat",
        str(args.repeat),
        "--pg-server",
        args.pg_server,
    ]
    for key, value in DS_SETTINGS.items():
        cmd += ["--ds-setting", f"{key}={value}"]
    if args.no_warmup:
        cmd.append("--no-warmup")
    if args.quiet:
        cmd.append("--quiet")
    cell = Cell(system, workload)
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=None, text=True, timeout=RUN_TIMEOUT * (args.repeat + 1) + 60
        )
    except subprocess.TimeoutExpired:
        cell.errors.append("timed out")
        return cell
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(CELL_MARK)]
    if not lines:
        cell.errors.append(f"child exited {proc.returncode} without figures")
        return cell
    data = json.loads(lines[-1][len(CELL_MARK) :])
    cell.runs = [Run(sec, srv) for sec, srv in zip(data["seconds"], data["server"], strict=True)]
    cell.errors = data["errors"]
    return cell


# --- report -------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def report(cells: dict[tuple[str, str], Cell]) -> str:
    lines = []
    header = (
        f"{'workload':8} {'system':17} {'runs':>4} {'median s':>9} {'min s':>8} {'max s':>8} "
        f"{'ms/step':>8} {'exec/s':>8}  vs peer-memory  vs peer-sqlite"
    )
    lines.append(header)
    lines.append("-" * len(header))

    def base(system: str, workload: str) -> tuple[float | None, str]:
        c = cells.get((system, workload))
        if c is not None and c.median is not None:
            return c.median, ""
        ref = REFERENCE.get((system, workload))
        if ref is not None:
            spec = workloads.WORKLOADS[workload]
            return ref * spec["steps"] * spec["executions"] / 1000, " (ref)"
        return None, ""

    for (system, workload), c in cells.items():
        med = c.median
        times = [r.seconds for r in c.runs]
        ratios = []
        for peer in ("peer-memory", "peer-sqlite"):
            b, tag = base(peer, workload)
            if system.startswith("durascope") and med and b:
                # "x faster" when > 1
                ratios.append(f"{b / med:>6.2f}x faster{tag}" if b >= med else f"{med / b:>6.2f}x slower{tag}")
            else:
                ratios.append("")
        line = (
            f"{workload:8} {system:17} {len(c.runs):>4} {_fmt(med, '.3f'):>9} "
            f"{_fmt(min(times) if times else None, '.3f'):>8} {_fmt(max(times) if times else None, '.3f'):>8} "
            f"{_fmt(c.per_step_ms()):>8} {_fmt(c.per_second(), '.1f'):>8}  {ratios[0]:15} {ratios[1]}"
        )
        lines.append(line.rstrip())
        if c.errors:
            lines.append(f"{'':8} {'':17} {len(c.errors)} failed: {c.errors[0][:100]}")
    lines.append("")
    lines.append("Goals")
    lines.append("-----")
    for text in goals(cells, base):
        lines.append(text)
    return "\n".join(lines)


def goals(cells: dict[tuple[str, str], Cell], base: Any) -> list[str]:
    out = []

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    for system in ("durascope-sqlite", "durascope-pg"):
        w1 = cells.get((system, "W1"))
        if w1 is not None and w1.median:
            b, tag = base("peer-sqlite", "W1")
            if b:
                ratio = b / w1.median
                out.append(
                    f"W1   {system:17} >= 5x faster than peer-sqlite:      {ratio:6.2f}x{tag:7} {verdict(ratio >= 5)}"
                )
            b, tag = base("peer-memory", "W1")
            if b:
                ratio = w1.median / b
                out.append(
                    f"W1   {system:17} <= 1.25x peer-memory's time:        {ratio:6.2f}x{tag:7} "
                    f"{verdict(ratio <= 1.25)}"
                )
        w4x = cells.get((system, "W1x4"))
        if w4x is not None and w4x.median and w1 is not None and w1.median:
            growth = w4x.median / w1.median
            out.append(
                f"W1x4 {system:17} 800-step time <= 4.5x 200-step time: {growth:6.2f}x        {verdict(growth <= 4.5)}"
            )
        w2 = cells.get((system, "W2"))
        if w2 is not None and w2.median:
            b, tag = base("peer-sqlite", "W2")
            if b:
                ratio = b / w2.median
                out.append(
                    f"W2   {system:17} >= 3x faster than peer-sqlite:      {ratio:6.2f}x{tag:7} {verdict(ratio >= 3)}"
                )
        w4 = cells.get((system, "W4"))
        if w4 is not None and w4.median:
            rate = w4.per_second() or 0
            goal = "" if system == "durascope-sqlite" else " (goal set for SQLite; shown for reference)"
            out.append(
                f"W4   {system:17} >= 270 executions/s:              {rate:6.1f}/s       {verdict(rate >= 270)}{goal}"
            )
    for peer in ("peer-sqlite", "peer-memory"):
        w1 = cells.get((peer, "W1"))
        w4x = cells.get((peer, "W1x4"))
        if w1 is not None and w4x is not None and w1.median and w4x.median:
            out.append(f"W1x4 {peer:17} (for comparison) 800/200 growth:    {w4x.median / w1.median:6.2f}x")
    if not out:
        out.append("(no goal could be evaluated with the selected workloads and systems)")
    return out


# --- main ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--workload", default=",".join(WORKLOAD_NAMES), help=f"comma-separated, from {','.join(WORKLOAD_NAMES)}"
    )
    parser.add_argument(
        "--systems",
        default=",".join(s for s in SYSTEMS if s not in REFERENCE_SYSTEMS),
        help=f"comma-separated, from {','.join(SYSTEMS)}",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell, each on a fresh store")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up execution")
    parser.add_argument(
        "--one",
        nargs=2,
        metavar=("SYSTEM", "WORKLOAD"),
        help="run one workload once on one system (no warm-up) and print its time",
    )
    parser.add_argument("--cell", nargs=2, metavar=("SYSTEM", "WORKLOAD"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--pg-server",
        default=scratch.server_of(),
        help="user@host:port of the PostgreSQL server (trust auth; default: that of DURASCOPE_BENCH_PG)",
    )
    parser.add_argument(
        "--ds-setting",
        action="append",
        default=[],
        type=parse_setting,
        metavar="KEY=VALUE",
        help="a Durascope setting for Durascope.open (repeatable), e.g. max_concurrent_invocations=128",
    )
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no per-run lines on stderr")
    args = parser.parse_args(argv)
    DS_SETTINGS.update(dict(args.ds_setting))
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    if args.cell:
        system, workload = args.cell
        cell = measure(system, workload, args.repeat, not args.no_warmup, args.pg_server, verbose=not args.quiet)
        print(
            CELL_MARK
            + json.dumps(
                {
                    "seconds": [r.seconds for r in cell.runs],
                    "server": [r.server_seconds for r in cell.runs],
                    "errors": cell.errors,
                }
            ),
            flush=True,
        )
        return 0

    if args.one:
        system, workload = args.one
        if system not in SYSTEMS or workload not in WORKLOAD_NAMES:
            print(f"unknown system or workload: {system} {workload}", file=sys.stderr)
            return 0
        cell = measure(system, workload, 1, warmup=False, pg_server=args.pg_server, verbose=False)
        if cell.runs:
            r = cell.runs[0]
            print(
                f"{system} {workload}: {r.seconds:.3f} s, {cell.per_step_ms():.2f} ms/step, "
                f"{cell.per_second():.1f} executions/s"
            )
        else:
            print(f"{system} {workload}: FAILED {cell.errors[0] if cell.errors else ''}")
        return 0

    chosen_w = [w.strip() for w in args.workload.split(",") if w.strip()]
    chosen_s = [s.strip() for s in args.systems.split(",") if s.strip()]
    bad = [w for w in chosen_w if w not in WORKLOAD_NAMES] + [s for s in chosen_s if s not in SYSTEMS]
    if bad:
        print(f"unknown workload/system: {', '.join(bad)}", file=sys.stderr)
        return 0

    cells: dict[tuple[str, str], Cell] = {}
    for workload in chosen_w:
        for system in chosen_s:
            cells[(system, workload)] = measure_in_child(system, workload, args)
    text = (
        f"Durascope tree: {tree_state()}  |  {time.strftime('%Y-%m-%d %H:%M')}  |  {os.cpu_count()} cores  |  "
        f"{args.repeat} runs per cell"
        + (f"  |  Durascope settings: {DS_SETTINGS}" if DS_SETTINGS else "")
        + "\n\n"
        + report(cells)
    )
    print(text)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "cores": os.cpu_count(),
                    "repeat": args.repeat,
                    "tree": tree_state(),
                    "durascope_settings": DS_SETTINGS,
                    "cells": [
                        {
                            "system": c.system,
                            "workload": c.workload,
                            "seconds": [r.seconds for r in c.runs],
                            "stored_end_seconds": [r.server_seconds for r in c.runs],
                            "median_s": c.median,
                            "ms_per_step": c.per_step_ms(),
                            "executions_per_s": c.per_second(),
                            "errors": c.errors,
                        }
                        for c in cells.values()
                    ],
                    "report": text,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
