"""Per-function statistics at 100,000 executions, on SQLite and PostgreSQL.

    python bench/insight_bench.py [--db sqlite,postgresql] [--executions 100000] [--functions 1]
    python bench/insight_bench.py --database-url URL [--executions 100000]   # keep and top up a store

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
import sys
import time
from dataclasses import astuple
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pagetiming import timed  # bench/ is on sys.path when a bench script runs
from scratch import create_pg, drop_pg, remove_sqlite, sqlite_url

from recorder.api import Durascope
from recorder.synthetic import synthetic
from recorder.transfer import import_histories, parse_history
from viewer import create_app

FUNCTION = "busy"


def _import(ds: Durascope, batch: list) -> None:
    # Other work on this machine may restart PostgreSQL: retry the batch (one transaction).
    for attempt in range(10):
        try:
            import_histories(ds.db, batch)
            return
        except Exception as exc:
            if attempt == 9 or "connection" not in str(exc).lower() and "unavailable" not in str(exc).lower():
                raise
            print(f"  batch retried after: {str(exc).splitlines()[0][:100]}", flush=True)
            time.sleep(3)


def _retrying(what, attempts: int = 20):
    """``what()``, again while PostgreSQL is being restarted by other work on the machine."""
    for attempt in range(attempts):
        try:
            return what()
        except Exception as exc:
            if attempt == attempts - 1 or not any(w in str(exc).lower() for w in ("connect", "shutting down")):
                raise
            time.sleep(3)
    return None


def _seeded(ds: Durascope) -> int:
    with ds.db.read() as s:
        return int(s.connection().exec_driver_sql("SELECT COUNT(*) FROM executions").scalar() or 0)


def seed(ds: Durascope, executions: int, functions: int = 1, first: int = 0) -> float:
    now = time.time()
    t = time.perf_counter()
    batch = []
    for i in range(first, executions):
        # Spread over the last 23 hours so that the default 24-hour window holds them all.
        start = now - 23 * 3600 + i * (23 * 3600 / executions)
        function = FUNCTION if i % functions == 0 else f"other-{i % functions}"
        batch.append(parse_history(synthetic(function, 12, start), "bench"))
        if len(batch) == 2000:
            _import(ds, batch)
            batch = []
    if first == 0:
        for j in range(200):
            batch.append(parse_history(synthetic(f"small-{j % 5}", 6, now - 3600 + j), "bench"))
    _import(ds, batch)
    return time.perf_counter() - t


def run(db: str, executions: int, functions: int, keep_url: str | None = None) -> None:
    name = None
    if keep_url:
        url = keep_url
        db = "postgresql" if keep_url.startswith("postgresql") else "sqlite"
    elif db == "sqlite":
        url = sqlite_url("insight-bench")
    else:
        name, url = _retrying(lambda: create_pg("ibench"))
    ds = _retrying(lambda: Durascope.open(url, run_engine=False))
    try:
        have = max(0, _seeded(ds) - 200) if keep_url else 0
        load = seed(ds, executions, functions, have) if have < executions else 0.0
        if db == "postgresql":
            with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as c:
                c.execute("ANALYZE")
        print(
            f"[{db}] seeded {executions:,} executions ({-(-executions // functions):,} of {FUNCTION}) in {load:.0f} s",
            flush=True,
        )
        client = create_app(durascope=ds).test_client()
        hour = executions // 23  # the executions of the last hour (they are spread over 23 hours)
        for label, url_path in (
            ("function page", f"/functions/{FUNCTION}"),
            ("stats twin", f"/api/v1/functions/{FUNCTION}/stats"),
            (f"twin, 1 h (~{hour:,})", f"/api/v1/functions/{FUNCTION}/stats?since=1h"),
            ("cost twin", f"/api/v1/functions/{FUNCTION}/cost"),
            ("functions index", "/functions"),
            ("index twin", "/api/v1/functions"),
        ):
            median, worst, size, status = astuple(timed(client, url_path))
            verdict = "under 1 s" if worst < 1000 else "OVER 1 s"
            print(
                f"[{db}] {label:20} {url_path:46} median {median:7.1f} ms  worst {worst:7.1f} ms  "
                f"{size / 1024:7.1f} KiB  HTTP {status}  ({verdict})",
                flush=True,
            )
        one, five, fifteen = os.getloadavg()
        print(f"[{db}] load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs", flush=True)
    finally:
        ds.close()
        if keep_url:
            pass
        elif name:
            drop_pg(name)
        else:
            remove_sqlite(url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--executions", type=int, default=100_000)
    ap.add_argument("--functions", type=int, default=1, help="spread the executions over this many functions")
    ap.add_argument("--database-url", default=None, help="time this store (kept; seeded up to --executions)")
    args = ap.parse_args()
    if args.database_url:
        run("", args.executions, args.functions, args.database_url)
        return
    for db in args.db.split(","):
        run(db.strip(), args.executions, args.functions)


if __name__ == "__main__":
    main()
