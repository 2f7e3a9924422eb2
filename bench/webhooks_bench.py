"""Webhook delivery benchmark: status changes delivered per second to a local receiver,
latency from commit to arrival, and a loss check.

    python bench/webhooks_bench.py [--db sqlite|postgresql | --database-url URL]
                                   [--backlog 10000] [--live 2000] [--rate 300] [--posts 10000]

Status changes are synthesized by starting executions with ``run_engine=False``
(each start commits an ExecutionStarted = one RUNNING status change). Two phases:

* live:    the dispatcher runs while executions are started at ``--rate`` per second;
           latency = arrival at the receiver - the moment the start transaction committed.
* backlog: ``--backlog`` executions are committed with no dispatcher running, then one
           is started; throughput = deliveries / seconds until the last one arrived.

* sender:  ``--posts`` signed-size POSTs from ``concurrency`` threads through the HTTP client
           alone (``recorder.followers.sender``) to a receiver in another process:
           CPU of this process per POST, and POSTs per second.

Every delivery is verified with ``standardwebhooks.Webhook(secret).verify`` and checked
off against the expected event ids: nothing may be missing. Goals: p50 < 50 ms,
>= 1000 deliveries/s, nothing lost.

``--db postgresql`` creates a fresh database on the server of ``DURASCOPE_BENCH_PG``
(default ``postgresql://postgres@127.0.0.1:5432/test``) and drops it afterwards. The
load average is printed before and after: on a shared machine, quote it with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from receiver import Receiver
from scratch import create_pg, drop_pg

from recorder.api import Durascope
from recorder.followers import webhooks as wh
from recorder.followers.dispatcher import Dispatcher
from recorder.followers.sender import Sender
from recorder.followers.webhooks import WebhookSettings


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _wait_all(recv: Receiver, expected: set[str], timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        arrivals = recv.first_arrivals()
        if expected <= arrivals.keys():
            return max(arrivals[a] for a in expected)
        time.sleep(0.01)
    missing = expected - recv.first_arrivals().keys()
    raise SystemExit(f"LOST: {len(missing)} of {len(expected)} status changes never arrived")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--db",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="a fresh SQLite file in a temp directory, or a fresh PostgreSQL database",
    )
    ap.add_argument("--database-url", default=None, help="use this store instead of a fresh one")
    ap.add_argument("--backlog", type=int, default=10_000)
    ap.add_argument("--live", type=int, default=2_000)
    ap.add_argument("--rate", type=float, default=300.0, help="starts per second in the live phase")
    ap.add_argument("--posts", type=int, default=10_000, help="POSTs of the sender phase (0: skip it)")
    args = ap.parse_args()
    if args.posts:
        _sender_phase(args.posts)
    tmp = tempfile.mkdtemp(prefix="durascope-wh-bench-")
    pg_name = None
    if args.database_url:
        url = args.database_url
    elif args.db == "postgresql":
        pg_name, url = create_pg("bench_wh")
    else:
        url = f"sqlite:///{tmp}/bench.db"
    try:
        _run(args, url)
    finally:
        if pg_name:
            drop_pg(pg_name)
        if os.environ.get("KEEP_BENCH_DB") is None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


_RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
print(srv.server_port, flush=True)
srv.serve_forever()
"""


def _sender_phase(posts: int) -> None:
    """The HTTP client alone: CPU per POST in this process, the receiver in another."""
    proc = subprocess.Popen([sys.executable, "-c", _RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{int(proc.stdout.readline())}/hook"
        ws = WebhookSettings.from_env()
        sender = Sender(ws)
        body = b'{"detail":' + b'"x"' * 100 + b"}"
        headers = {
            "webhook-id": "msg_" + "0" * 32,
            "webhook-timestamp": "1700000000",
            "webhook-signature": "v1," + "A" * 44,
        }
        per_thread = posts // ws.concurrency
        bad: list[object] = []

        def run() -> None:
            for _ in range(per_thread):
                res = sender.post(url, body, headers)
                if res.status != 204:
                    bad.append(res)

        threads = [threading.Thread(target=run) for _ in range(ws.concurrency)]
        cpu0, t0 = time.process_time(), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        sender.close()
        n = per_thread * ws.concurrency
        print(
            f"sender   {n:>6} POSTs from {ws.concurrency} threads: {cpu / n * 1e6:.0f} us CPU per POST, "
            f"{n / wall:,.0f} POSTs/s, {len(bad)} failed"
        )
    finally:
        proc.kill()
        proc.wait()


def _run(args: argparse.Namespace, url: str) -> None:
    ds = Durascope.open(url, run_engine=False)
    ds.register_function(
        "bench", "th_basic.add_one", code_dir=str(Path(__file__).resolve().parents[1] / "tests/handlers")
    )
    recv = Receiver()
    ws = WebhookSettings.from_env()
    sub = wh.create_subscription(ds.db, wh.validate_spec(recv.url))
    recv.secret = sub["secret"]
    print(
        f"database {url.split('@')[-1]}; dispatcher concurrency {ws.concurrency}, poll {ws.poll_seconds * 1000:.0f} ms"
    )
    print(f"start    {_load()}")

    # --- live phase: latency ---------------------------------------------------------------
    disp = Dispatcher(ds.db, ds.settings, ws)
    disp.start()
    commits: dict[str, float] = {}
    interval = 1.0 / args.rate
    t_next = time.monotonic()
    for i in range(args.live):
        arn = ds.control.start_execution("bench", "{}", f"live-{i}").arn
        commits[arn] = time.time()
        t_next += interval
        delay = t_next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    _wait_all(recv, set(commits), 120)
    disp.stop()
    arrivals = recv.first_arrivals()
    lat = [(arrivals[a] - t) * 1000 for a, t in commits.items()]
    print(
        f"live     {args.live:>6} status changes at {args.rate:.0f}/s: latency commit->arrival "
        f"p50 {statistics.median(lat):.1f} ms, p99 {_pct(lat, 99):.1f} ms, max {max(lat):.1f} ms"
    )

    # --- backlog phase: throughput ------------------------------------------------------------
    backlog: set[str] = set()
    t0 = time.monotonic()
    for i in range(args.backlog):
        backlog.add(ds.control.start_execution("bench", "{}", f"bulk-{i}").arn)
    commit_s = time.monotonic() - t0
    disp = Dispatcher(ds.db, ds.settings, ws)
    start = time.time()
    disp.start()
    last = _wait_all(recv, backlog, 600)
    disp.stop()
    took = last - start
    print(
        f"backlog  {args.backlog:>6} status changes (committed in {commit_s:.1f} s): delivered in {took:.2f} s "
        f"= {args.backlog / took:,.0f} deliveries/s"
    )

    expected = args.live + args.backlog
    unique = len(set(recv.ids))
    lost = expected - len(set(recv.first_arrivals()) & (backlog | set(commits)))
    print(
        f"check    expected {expected}, delivered {unique} distinct webhook-ids ({len(recv.ids) - unique} duplicates), "
        f"lost {lost}, bad signatures {recv.bad}"
    )
    ok = statistics.median(lat) < 50 and args.backlog / took >= 1000 and lost == 0 and recv.bad == 0
    print("goals    p50 < 50 ms, >= 1000 deliveries/s, nothing lost:", "MET" if ok else "NOT MET")
    print(f"end      {_load()}")
    recv.close()
    ds.close()


if __name__ == "__main__":
    main()
