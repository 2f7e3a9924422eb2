"""Executions: invoke, get, history, executions, logs, and stop, pause, resume, delete."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

import click

from recorder.cli.app import (
    STATUSES,
    durascope,
    echo_json,
    echo_table,
    friendly_errors,
    iso,
    main,
    output_option,
    payload_text,
    plural,
    wants_json,
)

PAYLOAD_HELP = "Input as JSON text, or @file to read it from a file (@- for stdin)."


def since_ms(text: str | None, option: str = "--since") -> int | None:
    """``7d``, ``12h``, ``30m`` or an ISO-8601 instant → epoch ms."""
    if not text:
        return None
    m = re.fullmatch(r"(\d+)([dhm])", text.strip())
    if m:
        seconds = int(m[1]) * {"d": 86400, "h": 3600, "m": 60}[m[2]]
        return int((time.time() - seconds) * 1000)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use 7d, 12h, 30m or an ISO-8601 time", param_hint=option) from None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp() * 1000)


def _ended(status: str, error: dict[str, Any] | None) -> str:
    """``FAILED: StepError: order o-1 has no items``: how an execution ended, in one line."""
    if not error:
        return status
    kind = (error.get("ErrorType") or "").rsplit(".", 1)[-1]
    return f"{status}: " + ": ".join(p for p in (kind, error.get("ErrorMessage")) if p)


@main.command("invoke")
@click.argument("name")
@click.option("--payload", default=None, help=PAYLOAD_HELP)
@click.option("--name", "execution_name", default=None, help="Durable execution name (idempotency key).")
@click.option("--wait", is_flag=True, help="Run an engine here until the execution ends, then print its outcome; "
                                          "exit 1 unless it SUCCEEDED.")
@click.option("--timeout", type=float, default=900.0, show_default=True, help="With --wait: seconds to wait.")
@click.pass_context
def invoke(ctx: click.Context, name: str, payload: str | None, execution_name: str | None, wait: bool,
           timeout: float) -> None:
    """Start an execution of function NAME and print its ARN."""
    payload = payload_text(payload, "--payload")
    with durascope(ctx, run_engine=wait) as ds:
        with friendly_errors():
            arn = ds.start(name, payload, execution_name)
        click.echo(arn)
        if not wait:
            click.echo("queued: an engine (`durascope engine` or `durascope serve`) on this database runs it", err=True)
            return
        try:
            summary = ds.wait(arn, timeout)
        except TimeoutError:
            raise click.ClickException(f"the execution did not finish within {timeout} s; it goes on "
                                       "when an engine runs against this database") from None
        out: dict[str, Any] = {"DurableExecutionArn": arn, "Status": summary.status}
        if summary.result is not None:
            out["Result"] = summary.result
        if summary.error is not None:
            out["Error"] = summary.error
        echo_json(out)
    if summary.status != "SUCCEEDED":
        raise click.ClickException(f"the execution ended {_ended(summary.status, summary.error)}")


@main.command("get")
@click.argument("arn")
@output_option()
@click.pass_context
def get(ctx: click.Context, arn: str, output: str, as_json: bool) -> None:
    """Show one execution: status, times, result or error, and what it waits on."""
    from viewer.view_models.execution import build_execution

    with durascope(ctx) as ds, friendly_errors():
        described = ds.get_execution(arn)
        view = build_execution(ds, arn)
    failing = view.operation(view.failure.op_id) if view.failure and view.failure.op_id else None
    waiting = [{"Kind": w.kind, "What": w.label, "Due": iso(w.due_ms) if w.due_ms else None,
                **({"CallbackId": w.callback_id} if w.callback_id else {})} for w in view.waiting_on]
    if wants_json(output, as_json):
        echo_json({**described, "WaitingOn": waiting,
                   **({"FailingOperation": {"Id": failing.id, "Name": failing.label, "Type": failing.kind,
                                            "Attempts": len(failing.attempts)}} if failing else {})})
        return
    rows: list[tuple[str, str]] = [
        ("name", view.name), ("arn", view.arn), ("function", f"{view.function} ({view.version})"),
        ("status", view.status + (" (a read-only copy)" if view.imported else "")),
        ("started", iso(view.start_ms)),
        ("ended", f"{iso(view.end_ms)}, after {_seconds(view.duration_ms)}" if view.end_ms else "still running"),
        ("invocations", str(len(view.invocations))), ("operations", str(len(view.operations)))]
    if view.error:
        rows.append(("error", view.error.summary))
    if failing:
        rows.append(("failing", f"{failing.kind} '{failing.label}'"
                                + (f" after {plural(len(failing.attempts), 'attempt')}" if failing.attempts else "")))
    if view.status == "SUCCEEDED":
        rows.append(("result", described.get("Result", "null")))
    for w in waiting:
        rows.append(("waiting on", w["What"] + (f", due {w['Due']}" if w["Due"] else "")
                     + (f", callback id {w['CallbackId']}" if "CallbackId" in w else "")))
    for key, value in rows:
        click.echo(f"{key:<12} {value}")


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.2f} s" if ms < 60_000 else f"{ms // 60_000} min {ms % 60_000 // 1000} s"


@main.command("history")
@click.argument("arn")
@click.option("--no-data", is_flag=True, help="IncludeExecutionData=false: payloads left out.")
@output_option("json")
@click.pass_context
def history(ctx: click.Context, arn: str, no_data: bool, output: str, as_json: bool) -> None:
    """Print the history of ARN as GetDurableExecutionHistory returns it (all pages joined);
    ``--output table`` gives one line per event."""
    with durascope(ctx) as ds, friendly_errors():
        events = ds.history(arn, include_data=not no_data)
    if wants_json(output, as_json):
        echo_json({"Events": events})
        return
    echo_table(["#", "TIME", "EVENT", "OPERATION"],
               [(e["EventId"], iso(int(e["EventTimestamp"] * 1000)), e["EventType"], e.get("Name") or e.get("Id", ""))
                for e in events], "no events")


@main.command("executions")
@click.option("--function", "function_name", default=None, help="Only this function.")
@click.option("--status", type=click.Choice(STATUSES, case_sensitive=False), default=None)
@click.option("--name", "name", default=None, help="Only executions whose name or ARN contains this.")
@click.option("--since", default=None, help="Started within (7d, 12h, 30m) or since an ISO-8601 time.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@output_option()
@click.pass_context
def executions(ctx: click.Context, function_name: str | None, status: str | None, name: str | None,
               since: str | None, limit: int, output: str, as_json: bool) -> None:
    """List executions, newest first, with their duration and error."""
    from recorder.queries import ExecutionQuery, browse_executions

    query = ExecutionQuery((function_name,) if function_name else (), (status.upper(),) if status else (),
                           name or None, since_ms(since))
    with durascope(ctx) as ds, friendly_errors():
        rows, _ = browse_executions(ds.db, query, "start", True, None, limit)
    now = int(time.time() * 1000)
    if wants_json(output, as_json):
        echo_json([{"DurableExecutionArn": r.arn, "DurableExecutionName": r.name, "FunctionName": r.function_name,
                    "Status": r.status, "StartTimestamp": r.start_ms / 1000,
                    **({"EndTimestamp": r.end_ms / 1000} if r.end_ms else {}),
                    "DurationSeconds": ((r.end_ms or now) - r.start_ms) / 1000,
                    **({"Error": json.loads(r.error_json)} if r.error_json else {})} for r in rows])
        return
    echo_table(["STARTED", "STATUS", "DURATION", "FUNCTION", "NAME", "ERROR"],
               [(iso(r.start_ms), r.status, _seconds((r.end_ms or now) - r.start_ms) + ("" if r.end_ms else " so far"),
                 r.function_name, r.name, _ended("", json.loads(r.error_json)).lstrip(": ")[:100]
                 if r.error_json else "") for r in rows],
               "no executions match" if (function_name or status or name or since) else "no executions yet")


@main.command("logs")
@click.argument("arn")
@click.option("--level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
              default=None, help="Only lines at or above this level.")
@click.option("--operation", "operation", default=None, metavar="NAME|ID",
              help="Only the lines written inside this operation (its id, or every operation of this name).")
@click.option("--no-replay", is_flag=True,
              help="Leave out the lines written while the SDK replayed (the repeats of earlier invocations).")
@output_option()
@click.pass_context
def logs_cmd(ctx: click.Context, arn: str, level: str | None, operation: str | None, no_replay: bool, output: str,
             as_json: bool) -> None:
    """Print what the handler of ARN wrote (logging, print, the SDK's context logger), each
    line with the operation it was written in and whether the SDK was replaying;
    ``--output json`` writes one JSON object per line."""
    from recorder.queries import execution_logs, operation_ids

    with durascope(ctx) as ds, friendly_errors():
        names: dict[str, str | None] = {}
        if operation is not None:
            names = operation_ids(ds.db, arn, operation)
            if not names:
                raise click.ClickException(f"no operation {operation!r} in this execution (give its id or name)")
            entries = sorted((e for op_id in names for e in execution_logs(ds.db, arn, level, op_id=op_id,
                                                                            replay=not no_replay)),
                             key=lambda e: e.id)
        else:
            entries = execution_logs(ds.db, arn, level, replay=not no_replay)
    if not entries:
        click.echo(f"no log lines at {level.upper()} or above" if level else
                   "no log lines match" if operation or no_replay else "this execution has logged nothing", err=True)
        return
    for e in entries:
        if wants_json(output, as_json):
            click.echo(json.dumps({"Timestamp": e.ts_ms / 1000, "Level": e.level, "Logger": e.logger,
                                   "Message": e.message, "RequestId": e.request_id, "OperationId": e.op_id,
                                   "Attempt": e.attempt, "Replay": e.replay}))
        else:
            where = (names.get(e.op_id) or e.op_id[:12]) if e.op_id else ""
            if e.op_id and e.attempt:
                where += f"#{e.attempt}"
            click.echo(f"{iso(e.ts_ms)} {e.level:<8} {(e.request_id or '')[:8]} {'replay ' if e.replay else ''}"
                       f"{where + ' ' if where else ''}{e.message}")


@main.command("stop")
@click.argument("arn")
@click.option("--message", default=None, help="Error message recorded with the stop.")
@click.pass_context
def stop(ctx: click.Context, arn: str, message: str | None) -> None:
    """Stop a running execution."""
    with durascope(ctx) as ds, friendly_errors():
        end = ds.stop(arn, {"ErrorMessage": message} if message else None)
    click.echo(f"stopped at {iso(end)}")


def _pause(ds: Any, arn: str, reason: str | None) -> str:
    ds.pause(arn, reason)
    return f"{ds.describe(arn).status.lower()}: resume it with `durascope resume {arn}`"


def _resume(ds: Any, arn: str, reason: str | None) -> str:
    ds.resume(arn, reason)
    return f"resumed: {ds.describe(arn).status}"


for _name, _act, _doc in (
        ("pause", _pause, "Pause a running execution (a running invocation ends first); its timeout pauses too."),
        ("resume", _resume, "Resume a paused execution.")):
    def _command(ctx: click.Context, arn: str, reason: str | None, act: Any = _act) -> None:
        with durascope(ctx) as ds, friendly_errors():
            said = act(ds, arn, reason)
        click.echo(said)

    main.command(_name, help=_doc)(click.argument("arn")(click.option(
        "--reason", default=None, help="Why, recorded with the change.")(click.pass_context(_command))))


@main.command("delete")
@click.argument("arn")
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.pass_context
def delete(ctx: click.Context, arn: str, yes: bool) -> None:
    """Delete a closed execution and its history."""
    if not yes:
        click.confirm(f"Delete {arn} and its whole history?", abort=True, err=True)
    with durascope(ctx) as ds, friendly_errors():
        ds.delete(arn)
    click.echo(f"deleted {arn}")
