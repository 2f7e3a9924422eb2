"""What it costs on AWS, as JSON: ``GET /api/v1/executions/<arn>/cost`` (one execution) and
``GET /api/v1/functions/<name>/cost?since=&until=`` (per 1,000 executions). The execution
and function pages show the same figures (``viewer/templates/_cost.html``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request

from recorder.errors import ServiceError
from viewer import api_v1, get_durascope
from viewer.view_models.common import ViewError
from viewer.view_models.cost import build_execution_cost, build_function_cost
from viewer.view_models.functions import known_function

api_bp = Blueprint("cost_api", __name__, url_prefix="/api/v1")
api_bp.register_error_handler(ViewError, api_v1.view_error)
api_bp.register_error_handler(ServiceError, api_v1.service_error)


@api_bp.get("/executions/<path:arn>/cost")
def execution_cost(arn: str) -> Any:
    return jsonify(build_execution_cost(get_durascope(current_app), arn).to_json())


@api_bp.get("/functions/<name>/cost")
def function_cost(name: str) -> Any:
    ds = get_durascope(current_app)
    window, _ = known_function(ds, name, request.args)
    return jsonify(build_function_cost(ds, name, window).to_json())
