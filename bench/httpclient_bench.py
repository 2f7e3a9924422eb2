"""The worker host's HTTP client: ``recorder.httpclient`` against urllib3, the library the
refactoring issue proposed for its retry-once.

    python bench/httpclient_bench.py [--requests 5000] [--threads 4] [--rounds 3]

Each client POSTs 1 KB (a checkpoint's size) from kept-alive connections, one per thread,
to Durascope's own HTTP server (``viewer.wsgiserver``, cheroot) running a WSGI app that
answers at once, in a child process so that the client's CPU is measured alone. Printed:
the client process's CPU per request and requests per second, for each round, clients in
turn; then the medians and the ratio urllib3 / httpclient.

urllib3 is configured as a worker host would need it: an ``HTTPConnectionPool`` with one
connection per thread (``maxsize=threads``, ``block=True``) and ``Retry(total=1,
read=0, status=0, redirect=0)``, the retry of a request that failed before the server
could have seen it (its equivalent of a stale kept-alive connection).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SERVER = """
import sys
from viewer.wsgiserver import WSGIServer
def app(environ, start_response):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(n)
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]
server = WSGIServer(app, "127.0.0.1", 0)
print(server.server_port, flush=True)
server.serve_forever()
"""

BODY = b"x" * 1024
HEADERS = {"Content-Type": "application/json"}


def run_httpclient(port: int, requests: int, threads: int) -> None:
    from recorder.httpclient import EngineConnections

    conns = EngineConnections(f"http://127.0.0.1:{port}")

    def work(n: int) -> None:
        for _ in range(n):
            status, _, _ = conns.request("POST", "/checkpoint", BODY, HEADERS, 10.0)
            assert status == 200

    _run_threads(work, requests, threads)


def run_urllib3(port: int, requests: int, threads: int) -> None:
    import urllib3

    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=threads, block=True,
                                      retries=urllib3.Retry(total=1, read=0, status=0, redirect=0),
                                      timeout=urllib3.Timeout(10.0))

    def work(n: int) -> None:
        for _ in range(n):
            resp = pool.request("POST", "/checkpoint", body=BODY, headers=HEADERS)
            assert resp.status == 200

    _run_threads(work, requests, threads)


def _run_threads(work: Any, requests: int, threads: int) -> None:
    per = requests // threads
    ts = [threading.Thread(target=work, args=(per,)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


CLIENTS = {"httpclient": run_httpclient, "urllib3": run_urllib3}


def measure(client: str, port: int, requests: int, threads: int) -> tuple[float, float]:
    """(CPU µs per request, requests/s) of one client run in a fresh interpreter."""
    code = (f"import sys, time, os; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'bench')!r})\n"
            "import httpclient_bench as b\n"
            f"b.CLIENTS[{client!r}]({port}, 200, {threads})\n"  # warm-up: imports, connections
            "c0 = time.process_time(); w0 = time.perf_counter()\n"
            f"b.CLIENTS[{client!r}]({port}, {requests}, {threads})\n"
            "print(time.process_time() - c0, time.perf_counter() - w0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    cpu, wall = float(out[0]), float(out[1])
    return cpu / requests * 1e6, requests / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in CLIENTS}
        print(f"load average {os.getloadavg()[0]:.1f}; {args.requests} POSTs of 1 KB from {args.threads} threads")
        for round_no in range(args.rounds):
            for name in CLIENTS:
                cpu_us, rate = measure(name, port, args.requests, args.threads)
                results[name].append((cpu_us, rate))
                print(f"round {round_no + 1} {name:10} {cpu_us:7.1f} µs CPU/request  {rate:8.0f} requests/s")
        med = {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs))
               for name, rs in results.items()}
        for name, (cpu_us, rate) in med.items():
            print(f"median     {name:10} {cpu_us:7.1f} µs CPU/request  {rate:8.0f} requests/s")
        print(f"urllib3 / httpclient: CPU {med['urllib3'][0] / med['httpclient'][0]:.2f}x, "
              f"throughput {med['urllib3'][1] / med['httpclient'][1]:.2f}x; load average {os.getloadavg()[0]:.1f}")
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
