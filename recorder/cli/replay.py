"""``durascope replay``: will a changed handler still replay recorded histories?

Exit status 0 when every history replays deterministically, 1 when one diverged, 2 when
the check could not run (a bad source, a handler that does not import); the last line
says which.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from recorder.cli.app import (
    STATUSES,
    database,
    echo_json,
    main,
    output_option,
    plural,
    wants_json,
)
from recorder.cli.executions import since_ms

if TYPE_CHECKING:
    from recorder.replay import ReplayReport


def _fail(message: str) -> None:
    click.echo(f"could not run: {message}", err=True)
    sys.exit(2)


@main.command("replay")
@click.argument("source", required=False)
@click.option("--handler", required=True, help="The handler as it is now: pkg.module:function.")
@click.option("--code-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Import the handler from this folder (default: the working directory and sys.path).")
@click.option("--arn", default=None, help="The execution ARN, for a history file saved from "
                                          "`aws lambda get-durable-execution-history` (optional).")
@click.option("--function", "function_name", default=None, help="Check every stored execution of this function.")
@click.option("--since", default=None, help="With --function: started within (7d, 12h, 30m) or since an ISO time.")
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False), default=None,
              help="With --function: only executions with this status (running: the ones a deploy would meet).")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds one replay may take.")
@output_option()
@click.pass_context
def replay_cmd(ctx: click.Context, source: str | None, handler: str, code_dir: str | None, arn: str | None,
               function_name: str | None, since: str | None, status: str | None, timeout: float, output: str,
               as_json: bool) -> None:
    """Replay SOURCE (a stored execution's ARN, a history file, or a Durascope export) with
    HANDLER, or with --function every stored execution of a function, and report the first
    operation where the code no longer matches the history."""
    from recorder import replay, replay_history

    if (source is None) == (function_name is None):
        _fail("give either SOURCE (an ARN or a file) or --function NAME")
    if source is not None and (since or status):
        _fail("--since and --status select executions of --function; a SOURCE is one history")
    reports: list[replay.ReplayReport] = []
    needs_store = function_name is not None or (source or "").startswith("arn:")
    if needs_store:
        with database(ctx) as db:
            if function_name is not None:
                start = since_ms(since)
                reports = replay.check_function(db, function_name, handler, code_dir, start,
                                                status.upper() if status else None, timeout)
                if not reports:
                    _fail(f"function {function_name} has no stored executions"
                          + (" that match" if since or status else ""))
            else:
                try:
                    histories = replay_history.load(source or "", db)
                except replay_history.SourceError as exc:
                    _fail(str(exc))
                reports = [replay.check(h, handler, code_dir, timeout) for h in histories]
    else:
        try:
            histories = replay_history.load(source or "", None, arn)
        except replay_history.SourceError as exc:
            _fail(str(exc))
        reports = [replay.check(h, handler, code_dir, timeout) for h in histories]
    code = replay.overall_exit_code(reports)
    if wants_json(output, as_json):
        echo_json({"exitCode": code, "reports": [r.to_json() for r in reports]})
    elif len(reports) == 1 and function_name is None:
        for line in reports[0].lines():
            click.echo(line, err=reports[0].result == replay.ERROR)
    else:
        _summary_table(reports)
    sys.exit(code)


def _summary_table(reports: list[ReplayReport]) -> None:
    from recorder import replay
    from recorder.arns import ExecutionArn
    from recorder.cli.app import echo_table

    rows = []
    for r in reports:
        name = ExecutionArn.parse(r.arn).name
        rows.append([name, r.result, f"{r.replayed}/{r.total}", r.summary.split(": ", 1)[-1]])
    echo_table(["EXECUTION", "RESULT", "REPLAYED", "DETAIL"], rows, "no executions")
    counts = {k: sum(1 for r in reports if r.result == k)
              for k in (replay.DETERMINISTIC, replay.DIVERGED, replay.ERROR)}
    click.echo(f"{plural(len(reports), 'execution')}: {counts[replay.DETERMINISTIC]} deterministic, "
               f"{counts[replay.DIVERGED]} diverged, {counts[replay.ERROR]} could not run")
