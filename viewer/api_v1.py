"""``/api/v1``: the viewer's data as JSON, the twin of every HTML page.

Each route builds the same view model as its page (``viewer.view_models``) and returns
``dataclasses.asdict`` of it, so scripts see exactly what people see. Errors are JSON:
``{"error": {"status": 400, "message": "..."}}``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from recorder.errors import ServiceError
from viewer.view_models.common import ViewError, to_dict
from viewer.view_models.execution import build_execution
from viewer.view_models.executions import ListFilters, build_execution_list
from viewer.view_models.history import EventFilters, build_event_page, build_logs

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")


def error_json(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"status": status, "message": message}}), status


@bp.errorhandler(ViewError)
def _view_error(exc: ViewError) -> Any:
    return error_json(exc.status, exc.message)


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> Any:
    return error_json(exc.status, exc.message)


def _ds() -> Any:
    return current_app.extensions["durascope"]


@bp.get("/executions")
def executions() -> Any:
    view = build_execution_list(_ds(), ListFilters.from_args(request.args))
    out = to_dict(view)
    out["status_counts"] = dict(view.status_counts)
    return jsonify(out)


@bp.get("/executions/<path:arn>")
def execution(arn: str) -> Any:
    view = build_execution(_ds(), arn)
    out = to_dict(view)
    out["done"] = view.done
    return jsonify(out)


@bp.get("/executions/<path:arn>/events")
def events(arn: str) -> Any:
    return jsonify(to_dict(build_event_page(_ds(), arn, EventFilters.from_args(request.args))))


@bp.get("/executions/<path:arn>/logs")
def logs(arn: str) -> Any:
    return jsonify(to_dict(build_logs(_ds(), arn, request.args)))


@bp.get("/executions/<path:arn>/gantt")
def gantt(arn: str) -> Any:
    from viewer.gantt import build_gantt

    chart = build_gantt(build_execution(_ds(), arn))
    return jsonify({"figure": chart.figure, "note": chart.note, "height": chart.height})
