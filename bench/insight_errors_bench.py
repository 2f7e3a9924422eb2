"""Error groups at scale: /errors and /api/v1/errors with 100,000 executions of which
20,000 failed, on SQLite and PostgreSQL; full-text search over the same store beside them.

    python bench/insight_errors_bench.py [--db sqlite,postgresql] [--executions 100000] [--failures 20000]

Histories are synthesized (``recorder.synthetic``) and loaded through the import path,
which runs the same projector as the live path, so the error index is filled as it would
be. Each failed execution has two failed attempts of a step and its own failure (three
occurrences), with messages that differ in numbers, hex ids and UUIDs and fold into a
handful of groups. Server time is measured around the WSGI call (Flask's test client).
Goal (issue 18): the page answers in under 1 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from dataclasses import astuple
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pagetiming import timed  # bench/ is on sys.path when a bench script runs
from scratch import scratch_url

from recorder.api import Durascope
from recorder.store.availability import DatabaseUnavailable
from recorder.synthetic import T0, synthetic, synthetic_failure
from recorder.transfer import import_histories, parse_history
from viewer import create_app

FUNCTIONS = 20
MESSAGES = (
    ("CardDeclined", "payment {n} declined for order {hex}", "charge"),
    ("TimeoutError", "bank {uuid} did not answer within {n} ms", "reserve"),
    ("KeyError", "'sku-{n}'", "lookup"),
    ("ConnectionError", "connection to 10.0.{n}.7:5432 refused at 2026-12-05T17:{n}:00Z", "save"),
    ("ValueError", "quantity {n} is over the limit of {n}", "validate"),
)


def _failure(i: int, t0: float) -> dict:
    error_type, template, step = MESSAGES[i % len(MESSAGES)]
    message = template.format(n=i % 997, hex=f"{i * 7919:08x}", uuid=uuid.uuid4())
    return synthetic_failure(f"fn-{i % FUNCTIONS}", t0, error_type, message, step=step)


def seed(ds: Durascope, executions: int, failures: int) -> None:
    every = max(executions // max(failures, 1), 1)
    batch, failed = [], 0
    for i in range(executions):
        t0 = T0 + i * 5
        if i % every == 0 and failed < failures:
            doc = _failure(failed, t0)
            failed += 1
        else:
            doc = synthetic(f"fn-{i % FUNCTIONS}", 4, t0)
        batch.append(parse_history(doc, "bench"))
        if len(batch) == 2000:
            _import(ds, batch)
            batch = []
    if batch:
        _import(ds, batch)


def _import(ds: Durascope, batch: list) -> None:
    # Other work on the machine may restart PostgreSQL: a batch is one transaction, so a
    # failed one is retried whole.
    for attempt in range(20):
        try:
            import_histories(ds.db, batch)
            return
        except DatabaseUnavailable as exc:
            print(f"batch retried: {exc.__cause__ or exc}", file=sys.stderr)
            time.sleep(min(2**attempt, 10))
    raise RuntimeError("the database stayed unavailable")


def run(db: str, executions: int, failures: int) -> None:
    with scratch_url(db, "ibench") as url:
        _run(db, url, executions, failures)


def _run(db: str, url: str, executions: int, failures: int) -> None:
    ds = Durascope.open(url, run_engine=False)
    try:
        t = time.perf_counter()
        seed(ds, executions, failures)
        load = time.perf_counter() - t
        client = create_app(durascope=ds).test_client()
        groups = client.get("/api/v1/errors").get_json()
        one, five, fifteen = os.getloadavg()
        print(
            f"\n{db}: loaded {executions:,} executions ({failures:,} failed, {groups['failures']:,} failure "
            f"records in {len(groups['groups'])} groups) in {load:.0f} s; load average {one:.2f}, {five:.2f}, "
            f"{fifteen:.2f} on {os.cpu_count()} CPUs"
        )
        print(f"{'request':<52} {'server ms (median of 5)':>24} {'bytes':>10}  goal")
        since = f"{int((T0 + executions * 5 / 2) * 1000)}"
        for label, url_ in (
            ("/errors", "/errors"),
            ("/api/v1/errors", "/api/v1/errors"),
            ("/errors?function=fn-7", "/errors?function=fn-7"),
            ("/api/v1/errors?since=(the second half)", f"/api/v1/errors?since={since}"),
            ("/search?q=declined (errors and log lines)", "/search?q=declined"),
            ("/api/v1/search?q=bank+answer", "/api/v1/search?q=bank+answer"),
        ):
            ms, _, size, status = astuple(timed(client, url_))
            goal = f"{'PASS' if ms < 1000 else 'MISS'} (< 1 s)" if "errors" in label.split("?")[0] else ""
            print(f"{label:<52} {ms:>24.1f} {size:>10,}  {goal} [{status}]")
    finally:
        ds.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="sqlite,postgresql")
    ap.add_argument("--executions", type=int, default=100_000)
    ap.add_argument("--failures", type=int, default=20_000)
    args = ap.parse_args()
    for db in args.db.split(","):
        run(db, args.executions, args.failures)
