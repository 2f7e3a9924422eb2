"""Pages across executions: error groups (``/errors``) and full-text search (``/search``),
with their JSON twins ``/api/v1/errors`` and ``/api/v1/search``.

Views gather a view model (``viewer.view_models.errors``) and render it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request

from recorder.errors import ServiceError
from viewer import get_durascope
from viewer.api_v1 import service_error, view_error
from viewer.view_models.common import ViewError
from viewer.view_models.errors import build_errors, build_search

bp = Blueprint("errors_pages", __name__, template_folder="templates")
api = Blueprint("errors_api", __name__, url_prefix="/api/v1")
api.register_error_handler(ViewError, view_error)
api.register_error_handler(ServiceError, service_error)


@bp.get("/errors")
def errors_page() -> Any:
    return render_template("errors.html", v=build_errors(get_durascope(current_app), request.args))


@bp.get("/search")
def search_page() -> Any:
    return render_template("search.html", v=build_search(get_durascope(current_app), request.args))


@api.get("/errors")
def errors() -> Any:
    return jsonify(build_errors(get_durascope(current_app), request.args).to_json())


@api.get("/search")
def search() -> Any:
    return jsonify(build_search(get_durascope(current_app), request.args).to_json())
