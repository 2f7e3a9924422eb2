"""Status changes and webhooks as JSON: ``/api/v1/feed`` (Server-Sent Events),
``/api/v1/status-changes`` (pages) and ``/api/v1/webhooks`` (the admin API, also the JSON
twin of the ``/webhooks`` pages of ``viewer.feed_pages``).

Data comes from ``recorder.followers``; the views only parse parameters and render. Errors
have the one ``/api/v1`` shape (``viewer.api_v1.error_json``).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, request

from recorder.errors import ServiceError
from recorder.followers import webhooks as wh
from recorder.followers.status import head_position, read_filtered
from viewer import get_durascope
from viewer.api_v1 import service_error, view_error
from viewer.stream import status_stream
from viewer.view_models.common import ViewError, int_arg
from viewer.view_models.feed import build_webhook, build_webhook_list, parse_filter

bp = Blueprint("feed", __name__, url_prefix="/api/v1")
bp.register_error_handler(ViewError, view_error)
bp.register_error_handler(ServiceError, service_error)

MAX_PAGE = 1000


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), status, mimetype="application/json")


# --- status changes ----------------------------------------------------------------------------


@bp.get("/status-changes")
def status_changes() -> Response:
    """``?after=POSITION&limit=N`` (+ function, status, name_prefix): one page, oldest first,
    with ``nextAfter`` to pass as ``after`` for the next page."""
    after = int_arg(request.args, "after", 0, 0, 2**62) or 0
    limit = int_arg(request.args, "limit", 100, 1, MAX_PAGE) or 100
    flt = parse_filter(request.args)
    ds = get_durascope(current_app)
    with ds.db.read() as s:
        changes, cursor = read_filtered(s, after, limit, flt, ds.settings)
        head = head_position(s)
    return _json(
        {
            "statusChanges": [{"position": c.position, "event": c.to_event(ds.settings)} for c in changes],
            "nextAfter": cursor,
            "head": head,
            "hasMore": cursor < head,
        }
    )


def _resume_position() -> int | None:
    last = request.headers.get("Last-Event-ID")
    if last in (None, ""):
        return int_arg(request.args, "after", None, 0, 2**62)
    try:
        after = int(last)
    except ValueError:
        raise ViewError("Last-Event-ID must be a log position") from None
    if after < 0:
        raise ViewError("Last-Event-ID must be a log position")
    return after


@bp.get("/feed")
def feed() -> Response:
    """Server-Sent Events, ``id:`` = global log position. Resumes after ``Last-Event-ID``
    (or ``?after=``); without either it starts at the current head (new changes only).
    ``?limit=N`` ends the stream after N events, ``?wait=S`` after S idle seconds."""
    after = _resume_position()
    limit = int_arg(request.args, "limit", None, 1, 1_000_000)
    wait = int_arg(request.args, "wait", None, 0, 86_400)
    flt = parse_filter(request.args)
    # viewer.stream: capped, one poller of the log for every open stream.
    return status_stream(get_durascope(current_app), after, limit, wait, flt)


# --- webhooks ---------------------------------------------------------------------------------------


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ViewError("the request body must be a JSON object")
    return data


def _spec_from(data: dict[str, Any]) -> wh.SubscriptionSpec:
    known = {"url", "statuses", "status", "function", "namePrefix", "onChangeOnly", "maxFailures", "description"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ViewError(f"unknown fields: {', '.join(unknown)[:200]}")
    return wh.validate_spec(
        data.get("url"),
        data.get("statuses", data.get("status")),
        data.get("function"),
        data.get("namePrefix"),
        data.get("onChangeOnly", False),
        data.get("maxFailures"),
        data.get("description"),
    )


@bp.get("/webhooks")
def webhooks_list() -> Response:
    """The ``/webhooks`` page's twin: every subscription."""
    return _json(build_webhook_list(get_durascope(current_app)).to_json())


@bp.post("/webhooks")
def webhooks_create() -> Response:
    """Create a subscription; the response holds its ``secret``, shown only here."""
    return _json(wh.create_subscription(get_durascope(current_app).db, _spec_from(_body())), 201)


@bp.get("/webhooks/<sub_id>")
def webhooks_get(sub_id: str) -> Response:
    """The ``/webhooks/<id>`` page's twin: the subscription (``deliveries`` counts them), and
    its newest deliveries as ``deliveryLog``, each with the execution it was for."""
    limit = int_arg(request.args, "limit", 100, 1, MAX_PAGE) or 100
    return _json(build_webhook(get_durascope(current_app), sub_id, limit=limit).to_json())


@bp.delete("/webhooks/<sub_id>")
def webhooks_delete(sub_id: str) -> Response:
    wh.delete_subscription(get_durascope(current_app).db, sub_id)
    return Response(status=204)


@bp.post("/webhooks/<sub_id>/disable")
def webhooks_disable(sub_id: str) -> Response:
    return _json(wh.set_enabled(get_durascope(current_app).db, sub_id, False))


@bp.post("/webhooks/<sub_id>/enable")
def webhooks_enable(sub_id: str) -> Response:
    return _json(wh.set_enabled(get_durascope(current_app).db, sub_id, True))


@bp.get("/webhooks/<sub_id>/deliveries")
def webhooks_deliveries(sub_id: str) -> Response:
    limit = int_arg(request.args, "limit", 50, 1, MAX_PAGE) or 50
    state = request.args.get("state") or None
    if state not in (None, "pending", "succeeded"):
        raise ViewError("state must be pending or succeeded")
    return _json({"deliveries": wh.list_deliveries(get_durascope(current_app).db, sub_id, limit, state)})


@bp.post("/webhooks/<sub_id>/deliveries/<int:delivery_id>/redeliver")
def webhooks_redeliver(sub_id: str, delivery_id: int) -> Response:
    return _json(wh.redeliver(get_durascope(current_app).db, sub_id, delivery_id), 202)
