"""``durascope callback succeed|fail|heartbeat``: answer a callback by its id, as
SendDurableExecutionCallbackSuccess/Failure/Heartbeat do."""

from __future__ import annotations

from typing import Any

import click

from recorder.cli.app import durascope, friendly_errors, main, payload_text


@main.group()
def callback() -> None:
    """Answer a callback (wait_for_callback, create_callback) by its id."""


@callback.command("succeed")
@click.argument("callback_id")
@click.option("--result", default=None, help="The result as JSON text, or @file (@- for stdin).")
@click.pass_context
def succeed(ctx: click.Context, callback_id: str, result: str | None) -> None:
    """Complete the callback with a result: the waiting execution goes on with it."""
    text = payload_text(result, "--result")
    with durascope(ctx) as ds, friendly_errors():
        ds.callback_success(callback_id, text)
    click.echo("callback succeeded")


@callback.command("fail")
@click.argument("callback_id")
@click.option("--error-type", default=None, help="The error's type, e.g. ApprovalDenied.")
@click.option("--error-message", default=None, help="What went wrong.")
@click.option("--error-data", default=None, help="Details as JSON text, or @file.")
@click.pass_context
def fail(
    ctx: click.Context, callback_id: str, error_type: str | None, error_message: str | None, error_data: str | None
) -> None:
    """Fail the callback: the waiting operation raises this error in the handler."""
    error: dict[str, Any] = {}
    if error_type:
        error["ErrorType"] = error_type
    if error_message:
        error["ErrorMessage"] = error_message
    data = payload_text(error_data, "--error-data")
    if data is not None:
        error["ErrorData"] = data
    with durascope(ctx) as ds, friendly_errors():
        ds.callback_failure(callback_id, error)
    click.echo("callback failed")


@callback.command("heartbeat")
@click.argument("callback_id")
@click.pass_context
def heartbeat(ctx: click.Context, callback_id: str) -> None:
    """Tell a callback with a heartbeat timeout that its answer is still coming."""
    with durascope(ctx) as ds, friendly_errors():
        ds.callback_heartbeat(callback_id)
    click.echo("heartbeat sent")
