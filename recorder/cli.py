"""The ``durascope`` command.

Every command reads ``DURASCOPE_DATABASE_URL`` (default: ``durascope.db`` in the
working directory) unless ``--database-url`` is given. Errors are printed as one
readable line and exit with status 1 (2 for bad usage, as click does).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from recorder.config import Settings
from recorder.errors import ServiceError
from recorder.store.db import SchemaOutdated

F = TypeVar("F", bound=Callable[..., Any])


def _settings(ctx: click.Context) -> Settings:
    url = ctx.obj.get("database_url") if ctx.obj else None
    return Settings.from_env(**({"database_url": url} if url else {}))


@contextmanager
def _friendly_errors() -> Iterator[None]:
    try:
        yield
    except ServiceError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from None
    except SchemaOutdated as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _durascope(ctx: click.Context, run_engine: bool = False) -> Iterator[Any]:
    from recorder.api import Durascope

    with _friendly_errors():
        ds = Durascope(_settings(ctx), run_engine=run_engine)
        try:
            yield ds
        finally:
            ds.close()


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


@click.group()
@click.option("--database-url", envvar="DURASCOPE_DATABASE_URL", default=None,
              help="SQLite file URL or PostgreSQL URL (default: sqlite:///durascope.db).")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """Durascope: run and inspect durable executions written with the AWS durable functions SDK."""
    ctx.ensure_object(dict)
    ctx.obj["database_url"] = database_url


# --- db ------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Schema and projections."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or upgrade the schema to the latest revision (Alembic)."""
    from recorder.store.db import Database

    with _friendly_errors():
        database = Database(_settings(ctx).database_url)
        database.upgrade()
        click.echo(f"schema at revision {database.current_revision()}")
        database.dispose()


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the schema revision of the database and the one this version needs."""
    from recorder.store.db import Database

    with _friendly_errors():
        database = Database(_settings(ctx).database_url)
        click.echo(f"database: {database.current_revision() or 'empty'}; needed: {database.head_revision()}")
        database.dispose()


@db.command("rebuild-projections")
@click.pass_context
def db_rebuild(ctx: click.Context) -> None:
    """Recompute executions, operations, callbacks and timers from the event log."""
    from recorder.store.projector import rebuild

    with _durascope(ctx) as ds:
        with ds.db.write() as s:
            count = rebuild(s)
        click.echo(f"rebuilt projections from {count} log records")


# --- functions -------------------------------------------------------------------------


@main.group()
def functions() -> None:
    """The function registry."""


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected K=V, got {pair!r}", param_hint="--env")
        env[key] = value
    return env


@functions.command("register")
@click.argument("name")
@click.argument("handler")
@click.option("--code-dir", type=click.Path(exists=True, file_okay=False, resolve_path=True),
              help="Directory put on sys.path to import the handler.")
@click.option("--env", "env_pairs", multiple=True, metavar="K=V", help="Environment variable (repeatable).")
@click.option("--timeout", type=click.IntRange(1, 900), default=900, show_default=True,
              help="Invocation timeout in seconds.")
@click.option("--execution-timeout", type=click.IntRange(1, 31_622_400), default=None,
              help="Execution timeout in seconds (default 86400).")
@click.option("--retention-days", type=click.IntRange(1, 90), default=None, help="Days a closed execution is kept (default 14).")
@click.pass_context
def functions_register(ctx: click.Context, name: str, handler: str, code_dir: str | None, env_pairs: tuple[str, ...],
                       timeout: int, execution_timeout: int | None, retention_days: int | None) -> None:
    """Register NAME with HANDLER written as pkg.module.function or pkg.module:function."""
    from recorder.engine.invoker import split_handler

    env = _parse_env(env_pairs)
    try:
        split_handler(handler)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="HANDLER") from None
    with _durascope(ctx) as ds:
        ds.register_function(name, handler, code_dir=code_dir, env=env, timeout=timeout,
                             execution_timeout=execution_timeout, retention_days=retention_days)
        click.echo(ds.control.function_arn(name))


@functions.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def functions_list(ctx: click.Context, as_json: bool) -> None:
    """List registered functions."""
    with _durascope(ctx) as ds:
        specs = ds.control.list_functions()
        if as_json:
            click.echo(json.dumps([{"FunctionName": f.name, "FunctionArn": ds.control.function_arn(f.name),
                                    "Handler": f.handler, "CodeDir": f.code_dir, "Environment": f.env,
                                    "Timeout": f.timeout, "ExecutionTimeout": f.execution_timeout,
                                    "RetentionPeriodInDays": f.retention_days} for f in specs], indent=2))
            return
        if not specs:
            click.echo("no functions registered; add one with `durascope functions register NAME HANDLER`")
            return
        click.echo(f"{'NAME':<24} {'HANDLER':<40} {'TIMEOUT':>7} {'EXEC TIMEOUT':>12} {'RETENTION':>9}")
        for f in specs:
            click.echo(f"{f.name:<24} {f.handler:<40} {f.timeout:>7} {f.execution_timeout:>12} {f.retention_days:>8}d")


# --- executions -----------------------------------------------------------------------------


@main.command("invoke")
@click.argument("name")
@click.option("--payload", default=None, help="Input as JSON text.")
@click.option("--name", "execution_name", default=None, help="Durable execution name (idempotency key).")
@click.option("--wait", is_flag=True, help="Run an engine here until the execution ends, then print its outcome.")
@click.option("--timeout", type=float, default=900.0, show_default=True, help="With --wait: seconds to wait.")
@click.pass_context
def invoke(ctx: click.Context, name: str, payload: str | None, execution_name: str | None, wait: bool,
           timeout: float) -> None:
    """Start an execution of function NAME and print its ARN."""
    if payload is not None:
        try:
            json.loads(payload)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--payload") from None
    with _durascope(ctx, run_engine=wait) as ds:
        with _friendly_errors():
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
        click.echo(json.dumps(out, indent=2))


@main.command("history")
@click.argument("arn")
@click.option("--no-data", is_flag=True, help="IncludeExecutionData=false: payloads left out.")
@click.pass_context
def history(ctx: click.Context, arn: str, no_data: bool) -> None:
    """Print the history of ARN as GetDurableExecutionHistory returns it (all pages joined)."""
    with _durascope(ctx) as ds, _friendly_errors():
        events = ds.history(arn, include_data=not no_data)
        click.echo(json.dumps({"Events": events}, indent=2, ensure_ascii=False))


@main.command("executions")
@click.option("--function", "function_name", default=None, help="Only this function.")
@click.option("--status", type=click.Choice(["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"],
                                            case_sensitive=False), default=None)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def executions(ctx: click.Context, function_name: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """List executions, newest first."""
    from sqlalchemy import select

    from recorder.store.models import Execution

    with _durascope(ctx) as ds:
        with ds.db.read() as s:
            q = select(Execution)
            if function_name:
                q = q.where(Execution.function_name == function_name)
            if status:
                q = q.where(Execution.status == status.upper())
            rows = s.scalars(q.order_by(Execution.start_ms.desc(), Execution.execution_id.desc()).limit(limit)).all()
        if as_json:
            click.echo(json.dumps([{"DurableExecutionArn": r.arn, "DurableExecutionName": r.name,
                                    "FunctionName": r.function_name, "Status": r.status,
                                    "StartTimestamp": r.start_ms / 1000,
                                    **({"EndTimestamp": r.end_ms / 1000} if r.end_ms else {})} for r in rows], indent=2))
            return
        for r in rows:
            click.echo(f"{_iso(r.start_ms)}  {r.status:<9}  {r.function_name:<20}  {r.arn}")


@main.command("logs")
@click.argument("arn")
@click.option("--level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
              default=None, help="Only lines at or above this level.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.pass_context
def logs_cmd(ctx: click.Context, arn: str, level: str | None, as_json: bool) -> None:
    """Print what the handler of ARN wrote (logging, print, the SDK's context logger)."""
    from recorder.queries import execution_logs

    with _durascope(ctx) as ds, _friendly_errors():
        for e in execution_logs(ds.db, arn, level):
            if as_json:
                click.echo(json.dumps({"Timestamp": e.ts_ms / 1000, "Level": e.level, "Logger": e.logger,
                                       "Message": e.message, "RequestId": e.request_id, "OperationId": e.op_id}))
            else:
                click.echo(f"{_iso(e.ts_ms)} {e.level:<8} {(e.request_id or '')[:8]} {e.message}")


@main.command("stop")
@click.argument("arn")
@click.option("--message", default=None, help="Error message recorded with the stop.")
@click.pass_context
def stop(ctx: click.Context, arn: str, message: str | None) -> None:
    """Stop a running execution."""
    with _durascope(ctx) as ds, _friendly_errors():
        end = ds.stop(arn, {"ErrorMessage": message} if message else None)
        click.echo(f"stopped at {_iso(end)}")


@main.command("engine")
@click.pass_context
def engine_cmd(ctx: click.Context) -> None:
    """Run the engine in the foreground (invocations and timers), without the viewer."""
    stopped = threading.Event()

    def _stop(*_: object) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with _durascope(ctx, run_engine=True) as ds:
        click.echo(f"engine {ds.engine.owner if ds.engine else ''} running on {ds.settings.database_url}", err=True)
        sys.stderr.flush()
        stopped.wait()


def _since_ms(text: str | None) -> int | None:
    """``7d``, ``12h``, ``30m`` or an ISO-8601 instant → epoch ms."""
    import re
    import time as _time

    if not text:
        return None
    m = re.fullmatch(r"(\d+)([dhm])", text.strip())
    if m:
        seconds = int(m[1]) * {"d": 86400, "h": 3600, "m": 60}[m[2]]
        return int((_time.time() - seconds) * 1000)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use 7d, 12h, 30m or an ISO-8601 time", param_hint="--since") from None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp() * 1000)


@main.command("export")
@click.argument("arn", required=False)
@click.option("--function", "function_name", default=None, help="Bulk: only this function.")
@click.option("--status", type=click.Choice(["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"],
                                            case_sensitive=False), default=None, help="Bulk: only this status.")
@click.option("--since", default=None, help="Bulk: started within (7d, 12h, 30m) or since an ISO-8601 time.")
@click.option("--format", "fmt", type=click.Choice(["json", "ndjson", "csv", "zip"]), default=None,
              help="One execution: json (AWS history), ndjson (events), csv (operations). Bulk: zip or ndjson. "
                   "Default from the file name.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True)
@click.pass_context
def export_cmd(ctx: click.Context, arn: str | None, function_name: str | None, status: str | None, since: str | None,
               fmt: str | None, output: str) -> None:
    """Export one history (ARN) or every execution matching the filters."""
    from pathlib import Path

    from recorder import transfer

    path = Path(output)
    suffix = path.suffix.lstrip(".").lower()
    with _durascope(ctx) as ds, _friendly_errors():
        if arn:
            fmt = fmt or (suffix if suffix in ("json", "ndjson", "csv") else "json")
            if fmt == "zip":
                raise click.BadParameter("one execution exports as json, ndjson or csv", param_hint="--format")
            from recorder.queries import find_execution

            with ds.db.read() as s:
                find_execution(s, arn)
            with path.open("w", encoding="utf-8", newline="") as out:
                {"json": transfer.write_json, "ndjson": transfer.write_ndjson, "csv": transfer.write_csv}[fmt](
                    ds.db, arn, out)
            click.echo(f"wrote {path}")
            return
        fmt = fmt or ("ndjson" if suffix == "ndjson" else "zip")
        if fmt not in ("zip", "ndjson"):
            raise click.BadParameter("bulk exports are zip or ndjson", param_hint="--format")
        flt = transfer.ExportFilter(function_name, status.upper() if status else None, _since_ms(since))
        total = transfer.count_matching(ds.db, flt)
        with click.progressbar(length=total, label=f"exporting {total} executions", file=sys.stderr) as bar:
            count = transfer.export_bulk(ds.db, transfer.matching_arns(ds.db, flt), path, fmt,
                                         progress=lambda _arn: bar.update(1))
        click.echo(f"wrote {count} executions to {path}")


@main.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--arn", default=None, help="The execution's ARN, for JSON saved from "
                                          "`aws lambda get-durable-execution-history` (it names none).")
@click.pass_context
def import_cmd(ctx: click.Context, file: str, arn: str | None) -> None:
    """Import exported histories as read-only executions (all or nothing)."""
    from pathlib import Path

    from recorder import transfer

    with _durascope(ctx) as ds, _friendly_errors():
        try:
            histories = transfer.read_import_file(Path(file), arn)
            arns = transfer.import_histories(ds.db, histories)
        except transfer.ImportRefused as exc:
            raise click.ClickException(f"not imported: {exc}") from None
        click.echo(f"imported {len(arns)} execution(s)")
        for a in arns:
            click.echo(a)


@main.command("pull")
@click.option("--endpoint-url", default=None, help="A Lambda-compatible endpoint (default: AWS itself).")
@click.option("--function", "function_name", required=True)
@click.option("--since", default=None, help="Only executions started within (7d, 12h) or since an ISO-8601 time.")
@click.option("--region", default=None, help="Region (default: your AWS configuration).")
@click.pass_context
def pull_cmd(ctx: click.Context, endpoint_url: str | None, function_name: str, since: str | None,
             region: str | None) -> None:
    """Copy executions and histories of a function from AWS or another Durascope (your boto3 credentials)."""
    from recorder import pull as pulling
    from recorder import transfer

    with _durascope(ctx) as ds, _friendly_errors():
        try:
            done, skipped = pulling.pull(ds.db, function_name, endpoint_url, region, _since_ms(since))
        except transfer.ImportRefused as exc:
            raise click.ClickException(f"not imported: {exc}") from None
        except pulling.PullFailed as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"pulled {done} execution(s); {skipped} already here")


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--no-engine", is_flag=True, help="Serve the API and viewer only; another process runs the engine.")
@click.option("--invoker", type=click.Choice(["workers", "in-process"]), default="workers", show_default=True,
              help="workers: each function runs in awslambdaric processes of its own, as in Lambda; "
                   "in-process: handlers run on the engine's threads (fastest, no isolation).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, no_engine: bool, invoker: str) -> None:
    """Serve the Lambda-compatible API and the viewer, and run the engine."""
    from viewer.server import run_server

    with _friendly_errors():
        run_server(_settings(ctx), host=host, port=port, run_engine=not no_engine, invoker=invoker)


@main.command("worker")
@click.option("--engine", "engine_url", required=True, help="URL of a durascope serve, e.g. http://10.0.0.5:8000")
@click.option("--function", "functions", multiple=True, help="Function to serve (repeatable; default: all registered).")
@click.option("--concurrency", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Runtime processes per function.")
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--insecure", is_flag=True, help="Allow a plain-http engine on another host (results, logs and "
                                                  "checkpoints then cross the network unencrypted).")
def worker_cmd(engine_url: str, functions: tuple[str, ...], concurrency: int, region: str, insecure: bool) -> None:
    """Run handlers in awslambdaric processes for an engine reached over HTTP (any host)."""
    from recorder.worker import run_worker

    with _friendly_errors():
        try:
            run_worker(engine_url, list(functions) or None, concurrency, region, insecure)
        except (OSError, RuntimeError) as exc:
            raise click.ClickException(f"cannot reach the engine at {engine_url}: {exc}") from None


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0 picks a free port.")
@click.option("--executions", type=click.IntRange(1, 1000), default=30, show_default=True,
              help="Executions in the batch (cycling through the demo scenarios).")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the sample inputs.")
@click.option("--no-serve", is_flag=True, help="Run the batch until it settles, print a summary and exit.")
@click.option("--settle-timeout", type=float, default=180.0, show_default=True,
              help="With --no-serve: seconds to wait for the batch to settle.")
@click.pass_context
def demo(ctx: click.Context, host: str, port: int, executions: int, seed: int, no_serve: bool,
         settle_timeout: float) -> None:
    """Register the sample workflows, start a mixed batch, answer its callbacks, and serve it."""
    from recorder.demo import run_batch, serve_demo

    settings = _settings(ctx)
    if not no_serve:
        with _friendly_errors():
            try:
                serve_demo(settings, host, port, executions, seed, echo=click.echo)
            except OSError as exc:
                raise click.ClickException(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
        return
    with _durascope(ctx, run_engine=True) as ds:
        outcome = run_batch(ds, executions, seed, settle_timeout, echo=click.echo)
        click.echo(outcome.summary())
        if not outcome.ok:
            raise click.ClickException("the demo batch did not end as planned")


# --- webhooks -----------------------------------------------------------------------------------


@main.group()
def webhooks() -> None:
    """Signed webhooks for execution status changes (Standard Webhooks)."""


def _webhook_db(ctx: click.Context) -> Any:
    from recorder.store.db import Database

    settings = _settings(ctx)
    database = Database(settings.database_url)
    database.check_schema(settings.auto_upgrade)
    return database


@webhooks.command("add")
@click.argument("url")
@click.option("--status", "statuses", multiple=True,
              type=click.Choice(["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"], case_sensitive=False),
              help="Only these statuses (repeatable; default: all five).")
@click.option("--function", "function", default=None, help="Function name, name prefix or function-ARN prefix.")
@click.option("--name-prefix", default=None, help="Only executions whose name starts with this.")
@click.option("--on-change-only", is_flag=True,
              help="Only when a terminal status differs from the function's previous terminal status.")
@click.option("--max-failures", type=click.IntRange(1, 10_000), default=None,
              help="Consecutive failed attempts before the subscription is disabled (default 20).")
@click.option("--description", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def webhooks_add(ctx: click.Context, url: str, statuses: tuple[str, ...], function: str | None,
                 name_prefix: str | None, on_change_only: bool, max_failures: int | None, description: str | None,
                 as_json: bool) -> None:
    """Subscribe URL to status changes; prints the signing secret (shown only once)."""
    from recorder.followers import webhooks as wh

    with _friendly_errors():
        spec = wh.validate_spec(url, [s.upper() for s in statuses] or None, function, name_prefix, on_change_only,
                                max_failures, description)
        database = _webhook_db(ctx)
        try:
            sub = wh.create_subscription(database, spec)
        finally:
            database.dispose()
    if as_json:
        click.echo(json.dumps(sub, indent=2))
        return
    click.echo(f"webhook {sub['id']} -> {sub['url']}")
    click.echo(f"secret {sub['secret']}  (shown only now; verify with standardwebhooks.Webhook(secret))")


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def webhooks_list(ctx: click.Context, as_json: bool) -> None:
    """List webhook subscriptions."""
    from recorder.followers import webhooks as wh

    with _friendly_errors():
        database = _webhook_db(ctx)
        try:
            subs = wh.list_subscriptions(database)
        finally:
            database.dispose()
    if as_json:
        click.echo(json.dumps(subs, indent=2))
        return
    if not subs:
        click.echo("no webhook subscriptions; add one with `durascope webhooks add URL`")
        return
    for w in subs:
        state = "enabled" if w["enabled"] else f"disabled ({w['disabledReason']})"
        filters = ",".join(w["statuses"] or ["*"])
        if w["function"]:
            filters += f" function={w['function']}"
        if w["namePrefix"]:
            filters += f" name={w['namePrefix']}*"
        if w["onChangeOnly"]:
            filters += " on-change-only"
        click.echo(f"{w['id']}  {state:<9}  {w['deliveries']['succeeded']:>6} ok {w['deliveries']['pending']:>5} "
                   f"pending  {w['url']}  [{filters}]")


def _webhook_set(ctx: click.Context, sub_id: str, op: str) -> None:
    from recorder.followers import webhooks as wh

    with _friendly_errors():
        database = _webhook_db(ctx)
        try:
            if op == "remove":
                wh.delete_subscription(database, sub_id)
            else:
                wh.set_enabled(database, sub_id, op == "enable")
        finally:
            database.dispose()
    click.echo(f"webhook {sub_id} {op}d" if op != "remove" else f"webhook {sub_id} removed")


@webhooks.command("disable")
@click.argument("subscription_id")
@click.pass_context
def webhooks_disable(ctx: click.Context, subscription_id: str) -> None:
    """Stop delivering to a subscription (it keeps its position; enable resumes)."""
    _webhook_set(ctx, subscription_id, "disable")


@webhooks.command("enable")
@click.argument("subscription_id")
@click.pass_context
def webhooks_enable(ctx: click.Context, subscription_id: str) -> None:
    """Resume a disabled subscription where it stopped."""
    _webhook_set(ctx, subscription_id, "enable")


@webhooks.command("remove")
@click.argument("subscription_id")
@click.pass_context
def webhooks_remove(ctx: click.Context, subscription_id: str) -> None:
    """Delete a subscription and its delivery log."""
    _webhook_set(ctx, subscription_id, "remove")


@webhooks.command("dispatch")
@click.pass_context
def webhooks_dispatch(ctx: click.Context) -> None:
    """Run the webhook dispatcher in the foreground (`durascope serve` runs one too)."""
    from recorder.followers.dispatcher import run_dispatcher

    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with _friendly_errors():
        click.echo(f"webhook dispatcher running on {_settings(ctx).database_url}", err=True)
        sys.stderr.flush()
        run_dispatcher(_settings(ctx).database_url, stopped)


if __name__ == "__main__":
    main()
