"""Viewer server time and bytes: execution pages of 100, 1,000 and 10,000 events, and the
executions list at 100,000 executions, on SQLite and PostgreSQL.

    python bench/viewer_bench.py [--db sqlite,postgresql] [--executions 100000]

Histories are synthesized and loaded through the import path (the engine would take hours
to produce 100,000 executions here); they are ordinary rows to the viewer. Server time is
measured around the WSGI call (Flask's test client: no network), bytes are the HTML
document (the page loads no script library; its stylesheet and scripts are small static
files, not counted). Goals (issue): the 10,000-event page under
1 s and 2 MB, the list under 150 ms at 100,000 executions.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import astuple
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pagetiming import timed  # bench/ is on sys.path when a bench script runs
from scratch import scratch_url

from recorder.api import Durascope
from recorder.synthetic import T0, synthetic
from recorder.transfer import import_histories, parse_history
from viewer import create_app


def _load_average() -> str:
    # Other work on the machine moves these figures: print the load beside them.
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def run(db: str, executions: int) -> None:
    with scratch_url(db, "vbench") as url:
        _run(db, url, executions)


def _run(db: str, url: str, executions: int) -> None:
    ds = Durascope.open(url, run_engine=False)
    try:
        big = {}
        for n in (100, 1_000, 10_000):
            doc = synthetic("pages", n, T0 + n)
            import_histories(ds.db, [parse_history(doc, "bench")])
            big[n] = doc["DurableExecutionArn"]
        t = time.perf_counter()
        batch = []
        for i in range(executions):
            batch.append(parse_history(synthetic(f"fn-{i % 20}", 4, T0 + 100_000 + i), "bench"))
            if len(batch) == 2000:
                import_histories(ds.db, batch)
                batch = []
        if batch:
            import_histories(ds.db, batch)
        load = time.perf_counter() - t
        app = create_app(durascope=ds)
        client = app.test_client()
        print(f"\n{db}: loaded {executions} executions in {load:.0f} s; {_load_average()}")
        print(f"{'page':<44} {'server ms (median of 5)':>24} {'bytes':>10}  goal")
        for n, arn in big.items():
            ms, _, size, status = astuple(timed(client, f"/executions/{quote(arn, safe='/:')}"))
            goal = f"{'PASS' if ms < 1000 and size < 2_000_000 else 'MISS'} (< 1 s, < 2 MB)" if n == 10_000 else ""
            print(f"{'execution page, ' + format(n, ',') + ' events':<44} {ms:>24.1f} {size:>10,}  {goal} [{status}]")
            ms, _, size, status = astuple(timed(client, f"/executions/{quote(arn, safe='/:')}/events"))
            print(f"{'  its event table (first window)':<44} {ms:>24.1f} {size:>10,}  [{status}]")
        ms, _, size, status = astuple(timed(client, "/"))
        print(
            f"{'list, first page, ' + format(executions, ',') + ' executions':<44} {ms:>24.1f} {size:>10,}  "
            f"{'PASS' if ms < 150 else 'MISS'} (< 150 ms) [{status}]"
        )
        ms, _, size, status = astuple(timed(client, "/?status=SUCCEEDED&function=fn-7&sort=duration"))
        print(f"{'list, filtered + sorted by duration':<44} {ms:>24.1f} {size:>10,}  [{status}]")
        print(f"done; {_load_average()}")
    finally:
        ds.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--executions", type=int, default=100_000)
    args = ap.parse_args()
    for db in args.db.split(","):
        run(db, args.executions)
