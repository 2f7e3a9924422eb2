"""``/api/v1``: the viewer's data as JSON, the twin of every HTML page.

Each route builds the same view model as its page (``viewer.view_models``) and returns
``dataclasses.asdict`` of it (or the model's ``to_json``), so scripts see exactly what
people see. Every error under ``/api/v1`` (here, in ``viewer.feed`` and for unknown
paths) has one shape, made by ``error_json``::

    {"error": {"status": 400, "type": "InvalidParameterValueException", "message": "..."}}
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from recorder.errors import ServiceError
from viewer import get_durascope
from viewer.graph import build_graph
from viewer.timeline import build_timeline
from viewer.view_models.common import ViewError, to_dict
from viewer.view_models.execution import build_execution, build_head, build_operation
from viewer.view_models.executions import ListFilters, build_execution_list
from viewer.view_models.feed import build_feed
from viewer.view_models.history import EventFilters, build_event_page, build_logs

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")

_TYPES = {400: "InvalidParameterValueException", 401: "AccessDeniedException", 403: "AccessDeniedException",
          404: "ResourceNotFoundException", 405: "MethodNotAllowed", 409: "ResourceConflictException",
          413: "RequestTooLargeException", 421: "AccessDeniedException", 429: "TooManyRequestsException"}


def error_json(status: int, message: str, error_type: str | None = None) -> tuple[Response, int]:
    body = {"status": status, "type": error_type or _TYPES.get(status, "ServiceException"), "message": message}
    return jsonify({"error": body}), status


def view_error(exc: ViewError) -> tuple[Response, int]:
    return error_json(exc.status, exc.message)


def service_error(exc: ServiceError) -> tuple[Response, int]:
    return error_json(exc.status, exc.message, exc.code)


bp.register_error_handler(ViewError, view_error)
bp.register_error_handler(ServiceError, service_error)


@bp.get("/executions")
def executions() -> Any:
    view = build_execution_list(get_durascope(current_app), ListFilters.from_args(request.args))
    out = to_dict(view)
    out["status_counts"] = dict(view.status_counts)
    return jsonify(out)


@bp.get("/executions/<path:arn>")
def execution(arn: str) -> Any:
    view = build_execution(get_durascope(current_app), arn)
    out = to_dict(view)
    out["done"] = view.done
    return jsonify(out)


@bp.get("/executions/<path:arn>/head")
def head(arn: str) -> Any:
    """What a page following the execution watches: its status and last event."""
    return jsonify(to_dict(build_head(get_durascope(current_app), arn)))


@bp.get("/executions/<path:arn>/operations/<op_id>")
def operation(arn: str, op_id: str) -> Any:
    return jsonify(to_dict(build_operation(get_durascope(current_app), arn, op_id)))


@bp.get("/executions/<path:arn>/events")
def events(arn: str) -> Any:
    return jsonify(to_dict(build_event_page(get_durascope(current_app), arn, EventFilters.from_args(request.args))))


@bp.get("/executions/<path:arn>/logs")
def logs(arn: str) -> Any:
    # Each line carries operationId and replay (whether the SDK was replaying when it was written).
    return jsonify(build_logs(get_durascope(current_app), arn, request.args).to_json())


@bp.get("/executions/<path:arn>/timeline")
def timeline(arn: str) -> Any:
    return jsonify(to_dict(build_timeline(build_execution(get_durascope(current_app), arn))))


@bp.get("/executions/<path:arn>/graph")
def graph(arn: str) -> Any:
    return jsonify(to_dict(build_graph(build_execution(get_durascope(current_app), arn))))


@bp.get("/feed/recent")
def feed_recent() -> Any:
    """The feed page's twin: the newest status changes matching the filter, newest first."""
    return jsonify(to_dict(build_feed(get_durascope(current_app), request.args)))
