"""Soak: the samples' mix on PostgreSQL, two engines with worker processes, for minutes.

    python bench/soak.py                                  # 10,000 executions over ~10 minutes
    python bench/soak.py --executions 1000 --minutes 2    # shorter, on a shared machine

Two ``durascope serve`` processes (worker processes, the default invoker) share one fresh
PostgreSQL database; executions are started through both APIs in turn (boto3, Event
invocations) at a steady pace, so that the whole batch is started over ``--minutes``. The
mix is the demo's scenarios that end without a human (``recorder.demo.SCENARIOS`` without
callbacks to answer, stops or executions meant to stay RUNNING): steps with retries,
waits, a map with failures, sagas that compensate, a callback that times out, an
execution timeout; each has the status it must end with. A webhook subscription to every
status change delivers to a receiver in this process (signatures verified).

While it runs, a probe checkpoints (a step's START+SUCCEED over HTTP with boto3) against
the engines in turn, ten times a second, on an invocation it holds itself: the checkpoint
latency under this load. Peak RSS (``VmHWM``) is read from every process of the engines'
process trees.

It prints throughput, p50/p99 checkpoint latency, peak RSS per process kind, and whether
anything was lost: every execution terminal with its planned status, every history
gap-free, the projections equal to their rebuild from the log (rebuilt in a transaction
that is rolled back), every status change delivered by webhook in order. Exit status 1
if anything was lost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from receiver import Receiver  # bench/ is on sys.path when a bench script runs
from scratch import create_pg, drop_pg

from recorder.api import Durascope
from recorder.demo import SCENARIOS, Scenario, register_samples
from recorder.engine.boundary import InvocationOutcome
from recorder.followers import webhooks as wh
from recorder.store.availability import DatabaseUnavailable
from recorder.store.projector import rebuild

PROJECTIONS = {
    "executions": "execution_id",
    "operations": "execution_id, op_id",
    "callbacks": "callback_id",
    "timers": "execution_id, kind, op_id",
}
MIX: tuple[Scenario, ...] = tuple(
    s for s in SCENARIOS if s.expect != "RUNNING" and not s.answers and s.stop_after is None
)


# --- the pieces ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine:
    """One ``durascope serve`` (API, engine, worker processes, webhook dispatcher)."""

    def __init__(self, database_url: str, log: Path, concurrency: int) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DURASCOPE_DATABASE_URL": database_url,
            "DURASCOPE_WORKER_CONCURRENCY": str(concurrency),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recorder.cli", "serve", "--port", str(self.port)],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(self.url + "/durascope/runtime/functions", timeout=1).read()
                break
            except Exception:  # noqa: BLE001 - not up yet: retried until the deadline
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve did not start; see {log}") from None
                time.sleep(0.1)
        self.client = boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=Config(retries={"max_attempts": 5}, max_pool_connections=16),
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class PeakRss:
    """The peak RSS (VmHWM, KiB) of every process in the engines' trees, sampled each second."""

    def __init__(self, roots: dict[int, str]) -> None:
        self.roots = roots
        self.peak: dict[int, tuple[str, int]] = {}
        self.halt = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _children(self) -> dict[int, list[int]]:
        tree: dict[int, list[int]] = defaultdict(list)
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                tree[int(stat[stat.rfind(")") + 2 :].split()[1])].append(int(entry))
        return tree

    def sample(self) -> None:
        tree = self._children()
        for root, kind in self.roots.items():
            todo = [(root, kind)]
            while todo:
                pid, what = todo.pop()
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
                if hwm > self.peak.get(pid, ("", 0))[1]:
                    self.peak[pid] = (what, hwm)
                todo.extend((child, "runtime") for child in tree.get(pid, ()))

    def _run(self) -> None:
        while not self.halt.wait(1.0):
            self.sample()

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """kind -> (processes, largest peak in MiB)."""
        kinds: dict[str, list[int]] = defaultdict(list)
        for what, hwm in self.peak.values():
            kinds[what].append(hwm)
        return {k: (len(v), max(v) // 1024) for k, v in kinds.items()}


class Probe:
    """Checkpoint round trips on an invocation the probe holds (its lease renewed by it)."""

    def __init__(self, ds: Durascope, engines: list[Engine]) -> None:
        ds.register_function("soak-probe", "samples.hello:handler")
        started = ds.control.start_execution("soak-probe", "{}")
        inv = ds.control.begin_invocation(started.execution_id, "soak-probe")
        assert inv is not None
        self.ds, self.inv, self.engines = ds, inv, engines
        self.samples: list[float] = []
        self.errors = 0
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        token, i, renewed = self.inv.token, 0, time.monotonic()
        while not self.halt.wait(0.1):
            if time.monotonic() - renewed > 5:
                try:
                    self.ds.control.renew_lease(self.inv.execution_id, self.inv.request_id, "soak-probe")
                    renewed = time.monotonic()
                except DatabaseUnavailable:  # an outage: the probe waits it out, as the engines do
                    self.errors += 1
                    continue
            op = f"{i:064x}"
            updates = [
                {"Id": op, "Type": "STEP", "Action": "START", "SubType": "Step", "Name": f"p{i}"},
                {"Id": op, "Type": "STEP", "Action": "SUCCEED", "Payload": "1"},
            ]
            client = self.engines[i % len(self.engines)].client
            t = time.perf_counter()
            try:
                out = client.checkpoint_durable_execution(
                    DurableExecutionArn=self.inv.arn, CheckpointToken=token, Updates=updates
                )
            except Exception:  # noqa: BLE001 - counted
                self.errors += 1
                continue
            self.samples.append((time.perf_counter() - t) * 1000)
            token = out["CheckpointToken"]
            i += 1

    def stop(self) -> None:
        self.halt.set()
        self.thread.join()
        self.ds.control.end_invocation(
            self.inv, InvocationOutcome.from_envelope({"Status": "SUCCEEDED", "Result": "1"})
        )


# --- the run -------------------------------------------------------------------------------


def _start_all(
    engines: list[Engine], plan: list[tuple[str, Scenario, dict[str, Any]]], seconds: float, threads: int = 4
) -> dict[str, tuple[str, str]]:
    """Start every planned execution at a steady pace; name -> (ARN, expected status)."""
    started: dict[str, tuple[str, str]] = {}
    lock = threading.Lock()
    t0 = time.monotonic()
    interval = seconds / max(1, len(plan))

    def worker(k: int) -> None:
        for i in range(k, len(plan), threads):
            delay = t0 + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            name, sc, payload = plan[i]
            r = engines[i % len(engines)].client.invoke(
                FunctionName=sc.function,
                InvocationType="Event",
                Payload=json.dumps(payload).encode(),
                DurableExecutionName=name,
            )
            with lock:
                started[name] = (r["DurableExecutionArn"], sc.expect)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return started


def _statuses(ds: Durascope) -> Counter[str]:
    with ds.db.read() as s:
        rows = s.execute(
            text("SELECT status, COUNT(*) FROM executions WHERE function_name <> 'soak-probe' GROUP BY status")
        ).all()
    return Counter({status: n for status, n in rows})


def _projections_match_rebuild(ds: Durascope) -> list[str]:
    """Tables whose rows differ from a rebuild from the log (the rebuild is rolled back)."""

    def snapshot(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
        return {
            t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY {o}"))] for t, o in PROJECTIONS.items()
        }

    with ds.db.engine.connect() as conn:
        tx = conn.begin()
        before = snapshot(conn)
        rebuild(conn)
        after = snapshot(conn)
        tx.rollback()
    return [t for t in PROJECTIONS if before[t] != after[t]]


def _histories_with_gaps(ds: Durascope) -> int:
    with ds.db.read() as s:
        return s.execute(
            text(
                "SELECT COUNT(*) FROM (SELECT execution_id FROM events WHERE event_id IS NOT NULL "
                "GROUP BY execution_id HAVING MIN(event_id) <> 1 OR MAX(event_id) <> COUNT(*) "
                "OR COUNT(DISTINCT event_id) <> COUNT(*)) g"
            )
        ).scalar_one()


def _invocations_per_engine(ds: Durascope) -> Counter[str]:
    """Invocations started, per engine process (the pid in the lease owner's name)."""
    with ds.db.read() as s:
        bodies = s.execute(text("SELECT body FROM events WHERE event_type = 'InvocationStarted'")).scalars().all()
    owners = [json.loads(b)["Engine"].split(":") for b in bodies]
    return Counter(o[1] for o in owners if len(o) > 1)


def _undelivered(receiver: Receiver, final: dict[str, str]) -> list[str]:
    """ARNs whose status changes did not all arrive in order (RUNNING, then the final one)."""
    per_arn: dict[str, list[str]] = defaultdict(list)
    ids: dict[str, set[str]] = defaultdict(set)
    for d in receiver.received():
        per_arn[d.arn].append(d.status)
        ids[d.event_id].add(d.webhook_id)
    bad = [
        arn
        for arn, status in final.items()
        if [s for i, s in enumerate(per_arn[arn]) if i == 0 or s != per_arn[arn][i - 1]] != ["RUNNING", status]
    ]
    bad += [f"event {e}: {len(w)} webhook-ids" for e, w in ids.items() if len(w) > 1]
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--executions", type=int, default=10_000)
    ap.add_argument("--minutes", type=float, default=10.0, help="over how long the executions are started")
    ap.add_argument("--concurrency", type=int, default=4, help="worker processes per function and engine")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    args = ap.parse_args()

    name, url = create_pg("soak")
    logs = Path(f"/tmp/{name}")
    logs.mkdir()
    ds = Durascope.open(url, run_engine=False)
    engines: list[Engine] = []
    try:
        register_samples(ds)
        receiver = Receiver("/soak")
        receiver.secret = wh.create_subscription(ds.db, wh.validate_spec(receiver.url))["secret"]
        probe = Probe(ds, engines)
        engines.extend(Engine(url, logs / f"engine-{i}.log", args.concurrency) for i in range(2))
        rss = PeakRss({engines[0].proc.pid: "engine", engines[1].proc.pid: "engine", os.getpid(): "soak client"})
        rng = random.Random(args.seed)
        plan = [(f"soak-{i:05d}", MIX[i % len(MIX)], MIX[i % len(MIX)].make_input(rng)) for i in range(args.executions)]
        print(
            f"soak: {args.executions} executions of {len(MIX)} scenarios over {args.minutes:g} min on two engines "
            f"({args.concurrency} runtimes per function each), PostgreSQL {name}; logs in {logs}",
            flush=True,
        )
        t0 = time.monotonic()
        probe.start()
        started = _start_all(engines, plan, args.minutes * 60)
        print(f"  started {len(started)} in {time.monotonic() - t0:.0f} s", flush=True)
        deadline = time.monotonic() + 600
        while (running := _statuses(ds)["RUNNING"]) and time.monotonic() < deadline:
            time.sleep(1.0)
        elapsed = time.monotonic() - t0
        probe.stop()
        rss.halt.set()
        rss.sample()
        # The last status changes may still be on their way to the receiver.
        finals = {arn: ds.describe(arn).status for arn, _ in started.values()}
        wait_until = time.monotonic() + 60
        while _undelivered(receiver, finals) and time.monotonic() < wait_until:
            time.sleep(1.0)
        unexpected = [
            f"{n}: {finals[arn]} (planned {expect})" for n, (arn, expect) in started.items() if finals[arn] != expect
        ]
        gaps = _histories_with_gaps(ds)
        differing = _projections_match_rebuild(ds)
        undelivered = _undelivered(receiver, finals)
        shares = _invocations_per_engine(ds)
    finally:
        for e in engines:
            e.stop()
        ds.close()
        if not args.keep:
            drop_pg(name)

    samples = sorted(probe.samples)
    statuses = Counter(finals.values())
    print(
        f"  {len(finals)} executions terminal {elapsed:.0f} s after the first start "
        f"({elapsed - args.minutes * 60:.1f} s after the last was due): {len(finals) / elapsed:.1f} executions/s "
        f"({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}); still running: {running}"
    )
    print("  invocations per engine: " + ", ".join(f"{n} (pid {pid})" for pid, n in shares.most_common()))
    if samples:
        print(
            f"  checkpoint latency under load ({len(samples)} probes, {probe.errors} errors): "
            f"p50 {statistics.median(samples):.1f} ms, p99 {samples[max(0, int(len(samples) * 0.99) - 1)]:.1f} ms"
        )
    for kind, (count, mib) in sorted(rss.by_kind().items()):
        print(f"  peak RSS, {kind}: {mib} MiB (largest of {count} process(es))")
    lost = bool(running or unexpected or gaps or differing or undelivered or receiver.bad)
    print(
        f"  lost: {'YES' if lost else 'nothing'} — unexpected statuses {len(unexpected)}, histories with gaps "
        f"{gaps}, projections differing from their rebuild {differing or 'none'}, executions whose status "
        f"changes were not all delivered in order {len(undelivered)}, bad signatures {receiver.bad}"
    )
    for line in (unexpected + undelivered)[:10]:
        print(f"    {line}")
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
