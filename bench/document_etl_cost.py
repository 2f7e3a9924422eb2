"""The document ETL sample run 1,000 times, priced as Lambda durable functions and as Step
Functions Standard, beside the figures of the article behind the samples.

    python bench/document_etl_cost.py [--runs 1000] [--memory-mb 128] [--database-url URL]

Every run extracts, transforms, waits for a reviewer's callback (answered "approved" here,
as soon as it is asked for) and loads: the article's happy path. The in-process engine runs
them against a fresh SQLite file (or ``--database-url``); ``recorder.cost`` prices what the
histories recorded. docs/cost.md explains the comparison.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recorder import cost  # noqa: E402
from recorder.api import Durascope  # noqa: E402
from recorder.store.sql import Raw  # noqa: E402
from samples import document_etl  # noqa: E402

ARTICLE = {"lambdaDurableUsd": 0.044, "stepFunctionsStandardUsd": 0.207}
FUNCTION = "document-etl"


def _open_callbacks(ds: Durascope) -> list[str]:
    with ds.db.read() as s:
        rows = Raw(s.connection()).all("SELECT c.callback_id FROM callbacks c JOIN executions e ON e.execution_id = "
                                       "c.execution_id WHERE e.function_name = :f AND c.status = 'STARTED'",
                                       {"f": FUNCTION})
    return [r[0] for r in rows]


def run(runs: int, memory_mb: int, database_url: str) -> dict:
    ds = Durascope.open(database_url)
    try:
        ds.register_function(FUNCTION, "samples.document_etl:handler", code_dir=str(ROOT))
        started = time.time()
        arns = [ds.start(FUNCTION, json.dumps(doc))
                for doc in document_etl.bulk_inputs(runs, random.Random(7), approval_timeout_seconds=3600)]
        answered = 0
        deadline = time.monotonic() + 60 + runs
        while answered < runs:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {answered} of {runs} reviews were asked for")
            pending = _open_callbacks(ds)
            for callback_id in pending:
                ds.callback_success(callback_id, json.dumps({"approved": True, "reviewer": "bench"}))
            answered += len(pending)
            if not pending:
                time.sleep(0.05)  # a bench polling its own store, not a test waiting on work
        statuses = [ds.wait(arn, 120).status for arn in arns]
        elapsed = time.time() - started
        table = cost.PriceTable.of(memory_mb={FUNCTION: memory_mb})
        estimate = cost.function_cost(ds.db, FUNCTION, int(started * 1000) - 1, int(time.time() * 1000) + 1, table)
    finally:
        ds.close()
    return {"runs": runs, "succeeded": statuses.count("SUCCEEDED"), "seconds": round(elapsed, 1),
            "memoryMb": memory_mb, **estimate.to_json()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--memory-mb", type=int, default=128)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--json", action="store_true", help="print the whole estimate as JSON")
    args = ap.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='etl-cost-')}/durascope.db"
    out = run(args.runs, args.memory_mb, url)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    b = out["breakdown"]
    print(f"{out['runs']:,} document ETL runs ({out['succeeded']:,} SUCCEEDED) in {out['seconds']} s, "
          f"{out['memoryMb']} MB, prices of {out['pricesAsOf']}; {b['basis']}")
    print(f"{'':32}{'Durascope':>14}{'article':>12}")
    print(f"{'Lambda durable functions':32}{out['lambdaDurableUsd']:>14.4f}{ARTICLE['lambdaDurableUsd']:>12.3f}")
    print(f"{'Step Functions Standard':32}{out['stepFunctionsStandardUsd']:>14.4f}"
          f"{ARTICLE['stepFunctionsStandardUsd']:>12.3f}")
    print("Lambda durable, per 1,000 runs:")
    for key, line in b["lambdaDurable"].items():
        print(f"  {key:28}{line['quantity']:>16,.6f}  ${line['usd']:.6f}")
    t = b["stepFunctionsStandard"]["stateTransitions"]
    print(f"Step Functions, per 1,000 runs:\n  {'stateTransitions':28}{t['quantity']:>16,.0f}  ${t['usd']:.6f}")
    print(f"usage over the sample: {json.dumps(b['usage'])}")


if __name__ == "__main__":
    main()
