"""``durascope export|import|pull``: histories in and out of the store."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from recorder.cli.app import STATUSES, durascope, friendly_errors, main, plural
from recorder.cli.executions import since_ms

ONE_FORMATS = ("json", "ndjson", "csv", "zip")
BULK_FORMATS = ("zip", "ndjson")


def export_format(path: Path, fmt: str | None, bulk: bool) -> str:
    """The format to write: the one asked for, else the one the file name says. A name that
    says another format than the one asked for, or says none, is refused."""
    allowed = BULK_FORMATS if bulk else ONE_FORMATS
    what = "a bulk export" if bulk else "one execution"
    suffix = path.suffix.lstrip(".").lower()
    if fmt is None:
        if suffix not in allowed:
            raise click.BadParameter(
                f"cannot tell the format from {path.name!r}: {what} is written as "
                f"{', '.join('.' + f for f in allowed)}; name the file so, or pass --format",
                param_hint="-o",
            )
        return suffix
    if fmt not in allowed:
        raise click.BadParameter(f"{what} is written as {' or '.join(allowed)}", param_hint="--format")
    if suffix in ONE_FORMATS and suffix != fmt:
        raise click.BadParameter(
            f"{path.name!r} says {suffix}, --format says {fmt}: make them agree", param_hint="--format"
        )
    return fmt


@main.command("export")
@click.argument("arn", required=False)
@click.option("--function", "function_name", default=None, help="Bulk: only this function.")
@click.option(
    "--status", type=click.Choice(STATUSES, case_sensitive=False), default=None, help="Bulk: only this status."
)
@click.option("--since", default=None, help="Bulk: started within (7d, 12h, 30m) or since an ISO-8601 time.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(ONE_FORMATS)),
    default=None,
    help="One execution: json (AWS history), ndjson (events), csv (operations) or zip. "
    "Bulk: zip or ndjson. Default: what the file name says.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), required=True)
@click.pass_context
def export_cmd(
    ctx: click.Context,
    arn: str | None,
    function_name: str | None,
    status: str | None,
    since: str | None,
    fmt: str | None,
    output: str,
) -> None:
    """Export one history (ARN) or every execution matching the filters."""
    from recorder import transfer
    from recorder.queries import find_execution

    path = Path(output)
    fmt = export_format(path, fmt, bulk=arn is None)
    with durascope(ctx) as ds, friendly_errors():
        if arn:
            with ds.db.read() as s:
                find_execution(s, arn)
            if fmt == "zip":
                transfer.export_bulk(ds.db, iter([arn]), path, "zip")
            else:
                with path.open("w", encoding="utf-8", newline="") as out:
                    {"json": transfer.write_json, "ndjson": transfer.write_ndjson, "csv": transfer.write_csv}[fmt](
                        ds.db, arn, out
                    )
            click.echo(f"wrote {path} ({fmt})")
            return
        flt = transfer.ExportFilter(function_name, status.upper() if status else None, since_ms(since))
        total = transfer.count_matching(ds.db, flt)
        with click.progressbar(length=total, label=f"exporting {plural(total, 'execution')}", file=sys.stderr) as bar:
            count = transfer.export_bulk(
                ds.db, transfer.matching_arns(ds.db, flt), path, fmt, progress=lambda _arn: bar.update(1)
            )
    click.echo(f"wrote {plural(count, 'execution')} to {path}")


@main.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--arn",
    default=None,
    help="The execution's ARN, for JSON saved from `aws lambda get-durable-execution-history` (it names none).",
)
@click.pass_context
def import_cmd(ctx: click.Context, file: str, arn: str | None) -> None:
    """Import exported histories as read-only executions (all or nothing)."""
    from recorder import transfer

    with durascope(ctx) as ds, friendly_errors():
        try:
            histories = transfer.read_import_file(Path(file), arn)
            arns = transfer.import_histories(ds.db, histories)
        except transfer.ImportRefused as exc:
            raise click.ClickException(f"not imported: {exc}") from None
    click.echo(f"imported {plural(len(arns), 'execution')}")
    for a in arns:
        click.echo(a)


@main.command("pull")
@click.option("--endpoint-url", default=None, help="A Lambda-compatible endpoint (default: AWS itself).")
@click.option("--function", "function_name", required=True)
@click.option("--since", default=None, help="Only executions started within (7d, 12h) or since an ISO-8601 time.")
@click.option("--region", default=None, help="Region (default: your AWS configuration, else us-east-1).")
@click.pass_context
def pull_cmd(
    ctx: click.Context, endpoint_url: str | None, function_name: str, since: str | None, region: str | None
) -> None:
    """Copy executions and histories of a function from AWS or another Durascope (your boto3
    credentials; none are needed for a Durascope without access keys)."""
    from recorder import pull as pulling
    from recorder import transfer

    with durascope(ctx) as ds, friendly_errors():
        try:
            done, skipped = pulling.pull(ds.db, function_name, endpoint_url, region, since_ms(since))
        except transfer.ImportRefused as exc:
            raise click.ClickException(f"not imported: {exc}") from None
        except pulling.PullFailed as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"pulled {plural(done, 'execution')}; {skipped} already here")
