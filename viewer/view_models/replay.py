"""The replay check of one execution, as the execution page shows it: the function's
registered handler run against the execution's stored history (``recorder.replay``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recorder import replay
from recorder.api import Durascope
from recorder.replay_history import SourceError, from_store


@dataclass(frozen=True)
class ReplayCheckView:
    arn: str
    function: str
    handler: str | None  # None: the function is not registered here
    result: str  # deterministic | diverged | error
    summary: str
    details: tuple[str, ...]  # the lines under the summary
    report: dict[str, Any]  # recorder.replay's JSON report

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "handler": self.handler, **self.report}


def build_replay_check(ds: Durascope, arn: str) -> ReplayCheckView:
    summary = ds.describe(arn)  # 404 for an unknown execution, before any work
    spec = ds.control.get_function(summary.function)
    if spec is None:
        report = replay.could_not_run(summary.arn, f"function {summary.function} is not registered here, "
                                                   "so there is no handler to replay it with")
    else:
        try:
            report = replay.check(from_store(ds.db, summary.arn), spec.handler, spec.code_dir)
        except SourceError as exc:
            report = replay.could_not_run(summary.arn, str(exc))
    lines = report.lines()
    return ReplayCheckView(summary.arn, summary.function, spec.handler if spec else None, report.result,
                           lines[0], tuple(line.strip() for line in lines[1:]), report.to_json())
