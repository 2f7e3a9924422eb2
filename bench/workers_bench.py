"""Handlers in worker processes, over HTTP: W1, W4, two engines, checkpoint latency.

    python bench/workers_bench.py                     # everything, SQLite and PostgreSQL
    python bench/workers_bench.py --only latency,w4 --db sqlite

* W1: one execution of 200 sequential steps through ``awslambdaric`` workers; every
  checkpoint is an HTTP request from the worker's boto3 to ``durascope serve``.
* W4: 100 executions of 3 steps started together, executions per second (the issue's goal
  through workers: at least 150/s on this 2-core machine).
* Two engines (PostgreSQL): W4 with 200 executions on one ``durascope serve`` and on two
  (same database, two ports, executions split between them); prints the scaling factor
  (goal at least 1.6x "where the cores allow it": two engines plus their workers on 2 cores
  share the same two cores, which this script reports next to the figure).
* Latency: CheckpointDurableExecution round trips over HTTP with boto3 (START+SUCCEED of a
  step each), p50 and p99.

W4 also prints where the engine process's CPU went: the HTTP server's threads (parsing,
the Flask app and the checkpoints' control-plane work they run) and the rest (engine and
worker-host threads, the bench's own starts and waits).

* HTTP (``--only http``): the server alone, with an application that does nothing, 16
  kept-alive connections POSTing 1 KB as a checkpoint does: its threads' CPU per request.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratch import create_pg, drop_pg

from recorder.config import Settings
from viewer.server import build_server, freeze_startup_heap
from viewer.wsgiserver import WSGIServer

BENCH_DIR = str(ROOT / "bench")


def _url_for(db: str, tmp: Path) -> tuple[str, str | None]:
    """A fresh store's URL, and the PostgreSQL database to drop afterwards (``drop_pg``)."""
    if db == "sqlite":
        return f"sqlite:///{tmp}/workers-{uuid.uuid4().hex[:6]}.db", None
    name, url = create_pg("bench")
    return url, name


class Served:
    def __init__(self, database_url: str, concurrency: int) -> None:
        settings = Settings.from_env(
            database_url=database_url,
            worker_concurrency=concurrency,
            max_concurrent_invocations=max(64, concurrency * 2),
        )
        self.server, self.ds = build_server(settings, port=0, invoker="workers")
        freeze_startup_heap()  # as ``durascope serve`` does once it is up
        threading.Thread(target=self.server.serve_forever, name="durascope-http-selector", daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        for name, handler in (("w1", "workloads:sequential"), ("w4", "workloads:three_steps")):
            self.ds.register_function(name, handler, code_dir=BENCH_DIR)

    def warm(self, function: str, payload: str, n: int) -> None:
        arns = [self.ds.start(function, payload) for _ in range(n)]
        for arn in arns:
            self.ds.wait(arn, 300)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.ds.close()


def _all_done(ds, arns: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for arn in arns:
        ds.wait(arn, max(1.0, deadline - time.monotonic()))


def bench_w1(db: str, tmp: Path) -> dict[str, float]:
    url, name = _url_for(db, tmp)
    s = Served(url, 1)
    try:
        s.warm("w1", '{"n": 5}', 1)
        t = time.perf_counter()
        arn = s.ds.start("w1", '{"n": 200}')
        assert s.ds.wait(arn, 600).status == "SUCCEEDED"
        el = time.perf_counter() - t
        return {"seconds": el, "ms_per_step": el / 200 * 1000}
    finally:
        s.close()
        if name:
            drop_pg(name)


def _cpu_seconds(pid: int, task: int | None = None) -> float:
    """utime + stime of a live process (or of one of its threads), from /proc."""
    stat = Path(f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat")
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _http_threads_cpu() -> float:
    """CPU seconds of this process's live HTTP server threads (viewer.wsgiserver names them)."""
    total = 0.0
    for t in threading.enumerate():
        if t.name.startswith("durascope-http") and t.native_id is not None:
            try:
                total += _cpu_seconds(os.getpid(), t.native_id)
            except OSError:
                continue  # ended meanwhile
    return total


def _runtime_pids(s: Served) -> list[int]:
    host = s.ds.local_workers
    return [pid for group in host.slots.values() for slot in group if (pid := slot.pid) is not None] if host else []


def bench_w4(db: str, tmp: Path, concurrency: int, n: int = 100) -> dict[str, float]:
    url, name = _url_for(db, tmp)
    s = Served(url, concurrency)
    try:
        s.warm("w4", "{}", concurrency)  # every runtime process started and warm
        pids = _runtime_pids(s)
        engine0, runtimes0, http0 = time.process_time(), sum(_cpu_seconds(p) for p in pids), _http_threads_cpu()
        t = time.perf_counter()
        arns = [s.ds.start("w4", "{}") for _ in range(n)]
        _all_done(s.ds, arns, 600)
        el = time.perf_counter() - t
        # Where the CPU went: this process is the engine (plus the client's status
        # polls); the runtime processes host the SDK and its boto3.
        engine = time.process_time() - engine0
        runtimes = sum(_cpu_seconds(p) for p in pids) - runtimes0
        http = _http_threads_cpu() - http0
        return {
            "seconds": el,
            "executions_per_s": n / el,
            "engine_cpu_ms_per_execution": engine / n * 1000,
            "engine_http_threads_cpu_ms_per_execution": http / n * 1000,
            "runtimes_cpu_ms_per_execution": runtimes / n * 1000,
        }
    finally:
        s.close()
        if name:
            drop_pg(name)


def _serve_process(database_url: str, port: int, concurrency: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DURASCOPE_DATABASE_URL": database_url, "DURASCOPE_WORKER_CONCURRENCY": str(concurrency)}
    return subprocess.Popen(
        [sys.executable, "-m", "recorder.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
    )


def _wait_http(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/durascope/runtime/functions", timeout=1)
            return
        except Exception:  # noqa: BLE001 - not up yet: retried until the deadline
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def bench_engines(engines: int, tmp: Path, concurrency: int, n: int = 200) -> dict[str, float]:
    name, url = create_pg("bench")
    from recorder.api import Durascope

    ds = Durascope.open(url, run_engine=False)
    ds.register_function("w4", "workloads:three_steps", code_dir=BENCH_DIR)
    procs, urls = [], []
    try:
        for i in range(engines):
            port = 18700 + i
            procs.append(_serve_process(url, port, concurrency, tmp / f"engine-{i}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        for u in urls:
            _wait_http(u)
        clients = [
            boto3.client(
                "lambda", endpoint_url=u, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
            )
            for u in urls
        ]
        # Warm every engine's runtime processes.
        warm = [
            c.invoke(FunctionName="w4", InvocationType="Event", Payload=b"{}")["ResponseMetadata"]["HTTPHeaders"][
                "x-amz-durable-execution-arn"
            ]
            for c in clients
            for _ in range(concurrency)
        ]
        _all_done(ds, warm, 300)
        t = time.perf_counter()
        arns = [
            clients[i % engines].invoke(FunctionName="w4", InvocationType="Event", Payload=b"{}")["ResponseMetadata"][
                "HTTPHeaders"
            ]["x-amz-durable-execution-arn"]
            for i in range(n)
        ]
        _all_done(ds, arns, 600)
        el = time.perf_counter() - t
        return {"seconds": el, "executions_per_s": n / el}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        ds.close()
        drop_pg(name)


def bench_latency(db: str, tmp: Path, n: int = 500) -> dict[str, float]:
    url, name = _url_for(db, tmp)
    settings = Settings.from_env(database_url=url)
    server, ds = build_server(settings, port=0, run_engine=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ds.register_function("w1", "workloads:sequential", code_dir=BENCH_DIR)
        started = ds.control.start_execution("w1", '{"n": 1}')
        inv = ds.control.begin_invocation(started.execution_id, "bench")
        assert inv is not None
        lam = boto3.client(
            "lambda",
            endpoint_url=f"http://127.0.0.1:{server.server_port}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        token = inv.token
        samples = []
        for i in range(n + 20):
            op = f"{i:064x}"
            updates = [
                {"Id": op, "Type": "STEP", "Action": "START", "SubType": "Step", "Name": f"s{i}"},
                {"Id": op, "Type": "STEP", "Action": "SUCCEED", "Payload": "1"},
            ]
            t = time.perf_counter()
            out = lam.checkpoint_durable_execution(DurableExecutionArn=inv.arn, CheckpointToken=token, Updates=updates)
            if i >= 20:
                samples.append((time.perf_counter() - t) * 1000)
            token = out["CheckpointToken"]
        samples.sort()
        return {
            "p50_ms": statistics.median(samples),
            "p99_ms": samples[int(len(samples) * 0.99) - 1],
            "mean_ms": statistics.fmean(samples),
        }
    finally:
        server.shutdown()
        server.server_close()
        ds.close()
        if name:
            drop_pg(name)


def bench_http(connections: int = 16, n: int = 8000) -> dict[str, float]:
    answer = json.dumps({"CheckpointToken": "t" * 200, "NewExecutionState": {"Operations": []}}).encode()
    body = json.dumps({"Updates": [{"Payload": "x" * 900}]}).encode()

    def app(environ, start_response):
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))])
        return [answer]

    def client(count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        for _ in range(count):
            conn.request("POST", "/x", body=body, headers={"Content-Type": "application/json"})
            conn.getresponse().read()
        conn.close()

    def run(count: int) -> None:
        threads = [threading.Thread(target=client, args=(count // connections,)) for _ in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    server = WSGIServer(app)
    threading.Thread(target=server.serve_forever, name="durascope-http-selector", daemon=True).start()
    try:
        run(connections * 20)  # warm: every connection open, the pool grown
        cpu0, t = _http_threads_cpu(), time.perf_counter()
        run(n)
        el, cpu = time.perf_counter() - t, _http_threads_cpu() - cpu0
        return {"server_cpu_us_per_request": cpu / n * 1e6, "requests_per_s": n / el}
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="latency,w1,w4,engines")
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--concurrency", type=int, default=16, help="runtime processes per function (W4)")
    ap.add_argument("--executions", type=int, default=100, help="executions of W4 (more: steadier CPU figures)")
    args = ap.parse_args()
    only = set(args.only.split(","))
    dbs = args.db.split(",")
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"durascope-workers-bench-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M")}
    if "http" in only:
        results["http"] = bench_http()
        print(f"HTTP server alone (a no-op app, 16 connections): {json.dumps(results['http'])}", flush=True)
    for db in dbs:
        if "latency" in only:
            results[f"latency/{db}"] = bench_latency(db, tmp)
            print(f"checkpoint over HTTP ({db}): {json.dumps(results[f'latency/{db}'])}", flush=True)
        if "w1" in only:
            results[f"w1/{db}"] = bench_w1(db, tmp)
            print(f"W1 through workers ({db}): {json.dumps(results[f'w1/{db}'])}", flush=True)
        if "w4" in only:
            results[f"w4/{db}"] = bench_w4(db, tmp, args.concurrency, args.executions)
            print(
                f"W4 through workers ({db}, {args.concurrency} runtimes): {json.dumps(results[f'w4/{db}'])}  "
                f"goal >= 150/s: {'PASS' if results[f'w4/{db}']['executions_per_s'] >= 150 else 'MISS'}",
                flush=True,
            )
    if "engines" in only and "postgresql" in dbs:
        one = bench_engines(1, tmp, args.concurrency // 2 or 1)
        two = bench_engines(2, tmp, args.concurrency // 2 or 1)
        factor = two["executions_per_s"] / one["executions_per_s"]
        results["engines"] = {"one": one, "two": two, "scaling": factor}
        print(
            f"W4 (200) one engine: {one['executions_per_s']:.1f}/s, two engines: {two['executions_per_s']:.1f}/s, "
            f"scaling {factor:.2f}x (goal >= 1.6x where the cores allow it; {os.cpu_count()} cores shared by "
            f"both engines, their workers and PostgreSQL)",
            flush=True,
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
