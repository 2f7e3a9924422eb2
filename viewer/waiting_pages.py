"""The waiting board: ``/waiting`` (suspended executions and what they wait for), its bulk
actions (``POST /waiting``: stop executions, fail callbacks, send heartbeats; the form
carries the CSRF token and asks for a confirmation) and the twin ``/api/v1/waiting``.

Views gather a view model (``viewer.view_models.waiting``) and render it; the actions go
through the control plane's own API, one target at a time.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request

from recorder.errors import ServiceError
from viewer import get_durascope
from viewer.api_v1 import service_error, view_error
from viewer.view_models.common import ViewError
from viewer.view_models.waiting import BulkAction, apply_bulk, build_waiting

bp = Blueprint("waiting_pages", __name__, template_folder="templates")
api = Blueprint("waiting_api", __name__, url_prefix="/api/v1")
api.register_error_handler(ViewError, view_error)
api.register_error_handler(ServiceError, service_error)


@bp.get("/waiting")
def waiting_page() -> Any:
    return render_template("waiting.html", v=build_waiting(get_durascope(current_app), request.args), outcome=None)


@bp.post("/waiting")
def waiting_action() -> Any:
    ds = get_durascope(current_app)
    try:
        bulk = BulkAction.from_form(request.form)
    except ViewError as exc:
        return render_template("waiting.html", v=build_waiting(ds, request.args), outcome=None,
                               form_error=exc.message), 400
    outcome = apply_bulk(ds, bulk)
    return render_template("waiting.html", v=build_waiting(ds, request.args), outcome=outcome)


@api.get("/waiting")
def waiting() -> Any:
    return jsonify(build_waiting(get_durascope(current_app), request.args).to_json())
