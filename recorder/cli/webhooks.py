"""``durascope webhooks``: signed status-change deliveries (Standard Webhooks)."""

from __future__ import annotations

import signal
import sys
import threading

import click

from recorder.cli.app import (
    STATUSES,
    database,
    echo_json,
    echo_table,
    friendly_errors,
    main,
    output_option,
    safe_url,
    settings_of,
    wants_json,
)


@main.group()
def webhooks() -> None:
    """Signed webhooks for execution status changes (Standard Webhooks)."""


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES, case_sensitive=False),
    help="Only these statuses (repeatable; default: all five).",
)
@click.option("--function", "function", default=None, help="Function name, name prefix or function-ARN prefix.")
@click.option("--name-prefix", default=None, help="Only executions whose name starts with this.")
@click.option(
    "--on-change-only",
    is_flag=True,
    help="Only when a terminal status differs from the function's previous terminal status.",
)
@click.option(
    "--max-failures",
    type=click.IntRange(1, 10_000),
    default=None,
    help="Failed attempts in a row needed, besides DURASCOPE_WEBHOOKS_DISABLE_AFTER_SECONDS of "
    "failure, before the subscription is disabled (default 20).",
)
@click.option("--description", default=None)
@output_option()
@click.pass_context
def webhooks_add(
    ctx: click.Context,
    url: str,
    statuses: tuple[str, ...],
    function: str | None,
    name_prefix: str | None,
    on_change_only: bool,
    max_failures: int | None,
    description: str | None,
    output: str,
    as_json: bool,
) -> None:
    """Subscribe URL to status changes; prints the signing secret (shown only once)."""
    from recorder.followers import webhooks as wh

    with friendly_errors():
        spec = wh.validate_spec(
            url, [s.upper() for s in statuses] or None, function, name_prefix, on_change_only, max_failures, description
        )
    with database(ctx) as db:
        sub = wh.create_subscription(db, spec)
    if wants_json(output, as_json):
        echo_json(sub)
        return
    click.echo(f"webhook {sub['id']} -> {sub['url']}")
    click.echo(f"secret {sub['secret']}  (shown only now; verify with standardwebhooks.Webhook(secret))")


@webhooks.command("list")
@output_option()
@click.pass_context
def webhooks_list(ctx: click.Context, output: str, as_json: bool) -> None:
    """List webhook subscriptions."""
    from recorder.followers import webhooks as wh

    with database(ctx) as db:
        subs = wh.list_subscriptions(db)
    if wants_json(output, as_json):
        echo_json(subs)
        return
    rows = []
    for w in subs:
        filters = ",".join(w["statuses"] or ["*"])
        if w["function"]:
            filters += f" function={w['function']}"
        if w["namePrefix"]:
            filters += f" name={w['namePrefix']}*"
        if w["onChangeOnly"]:
            filters += " on-change-only"
        rows.append(
            (
                w["id"],
                "enabled" if w["enabled"] else f"disabled ({w['disabledReason']})",
                w["deliveries"]["succeeded"],
                w["deliveries"]["pending"],
                filters,
                w["url"],
            )
        )
    echo_table(
        ["ID", "STATE", "DELIVERED", "PENDING", "SENDS", "URL"],
        rows,
        "no webhook subscriptions; add one with `durascope webhooks add URL`",
    )


def _webhook_set(ctx: click.Context, sub_id: str, op: str) -> None:
    from recorder.followers import webhooks as wh

    with database(ctx) as db:
        if op == "remove":
            wh.delete_subscription(db, sub_id)
        else:
            wh.set_enabled(db, sub_id, op == "enable")
    click.echo(f"webhook {sub_id} {op}d" if op != "remove" else f"webhook {sub_id} removed")


for _op, _doc in (
    ("disable", "Stop delivering to a subscription (what it misses is still recorded; enable delivers it)."),
    ("enable", "Resume a disabled subscription where it stopped."),
    ("remove", "Delete a subscription and its delivery log."),
):

    def _command(ctx: click.Context, subscription_id: str, op: str = _op) -> None:
        _webhook_set(ctx, subscription_id, op)

    webhooks.command(_op, help=_doc)(click.argument("subscription_id")(click.pass_context(_command)))


@webhooks.command("dispatch")
@click.pass_context
def webhooks_dispatch(ctx: click.Context) -> None:
    """Run the webhook dispatcher in the foreground (`durascope serve` runs one too)."""
    from recorder.followers.dispatcher import run_dispatcher

    settings = settings_of(ctx)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    with friendly_errors(settings.database_url):
        click.echo(f"webhook dispatcher running on {safe_url(settings.database_url)}", err=True)
        sys.stderr.flush()
        run_dispatcher(settings.database_url, stopped)
