"""Per-function statistics at 100,000 executions, on SQLite and PostgreSQL.

    python bench/insight_bench.py [--db sqlite,postgresql] [--executions 100000] [--functions 1]

Seeds N finished executions started over the last 24 hours, all of one function (the worst
case for that function's page) or spread over ``--functions`` of them (synthetic
histories from ``recorder.synthetic``: five steps, one of them retried, two invocations),
plus a few small functions, through the import path; then times, around the WSGI call
(Flask's test client, no network), the function's statistics page, its JSON twin and the
functions index. Goal (issue 19): each under 1 s at 100,000 executions. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recorder.api import Durascope  # noqa: E402
from recorder.synthetic import synthetic  # noqa: E402
from recorder.transfer import import_histories, parse_history  # noqa: E402
from viewer import create_app  # noqa: E402

PG_ADMIN = os.environ.get("DURASCOPE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
FUNCTION = "busy"


def timed(client, url: str, runs: int = 5) -> tuple[float, float, int, int]:  # type: ignore[no-untyped-def]
    client.get(url)  # warm: the first request also loads templates
    samples, size, status = [], 0, 0
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get(url)
        samples.append((time.perf_counter() - t) * 1000)
        size, status = len(r.data), r.status_code
    return statistics.median(samples), max(samples), size, status


def seed(ds: Durascope, executions: int, functions: int = 1) -> float:
    now = time.time()
    t = time.perf_counter()
    batch = []
    for i in range(executions):
        # Spread over the last 23 hours so that the default 24-hour window holds them all.
        start = now - 23 * 3600 + i * (23 * 3600 / executions)
        function = FUNCTION if i % functions == 0 else f"other-{i % functions}"
        batch.append(parse_history(synthetic(function, 12, start), "bench"))
        if len(batch) == 2000:
            import_histories(ds.db, batch)
            batch = []
    for j in range(200):
        batch.append(parse_history(synthetic(f"small-{j % 5}", 6, now - 3600 + j), "bench"))
    import_histories(ds.db, batch)
    return time.perf_counter() - t


def run(db: str, executions: int, functions: int) -> None:
    name = None
    if db == "sqlite":
        url = f"sqlite:////tmp/insight-bench-{uuid.uuid4().hex[:6]}.db"
    else:
        name = f"ibench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    ds = Durascope.open(url, run_engine=False)
    try:
        load = seed(ds, executions, functions)
        if db == "postgresql":
            with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as c:
                c.execute("ANALYZE")
        print(f"[{db}] seeded {executions:,} executions ({-(-executions // functions):,} of {FUNCTION}) "
              f"in {load:.0f} s", flush=True)
        client = create_app(durascope=ds).test_client()
        for label, url_path in (("function page", f"/functions/{FUNCTION}"),
                                ("stats twin", f"/api/v1/functions/{FUNCTION}/stats"),
                                ("functions index", "/functions"),
                                ("index twin", "/api/v1/functions")):
            median, worst, size, status = timed(client, url_path)
            verdict = "under 1 s" if worst < 1000 else "OVER 1 s"
            print(f"[{db}] {label:16} {url_path:36} median {median:7.1f} ms  worst {worst:7.1f} ms  "
                  f"{size / 1024:7.1f} KiB  HTTP {status}  ({verdict})", flush=True)
        one, five, fifteen = os.getloadavg()
        print(f"[{db}] load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs", flush=True)
    finally:
        ds.close()
        if name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--executions", type=int, default=100_000)
    ap.add_argument("--functions", type=int, default=1, help="spread the executions over this many functions")
    args = ap.parse_args()
    for db in args.db.split(","):
        run(db.strip(), args.executions, args.functions)


if __name__ == "__main__":
    main()
