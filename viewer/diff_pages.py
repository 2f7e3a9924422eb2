"""Compare two executions: ``/diff?a=ARN&b=ARN`` (or two ``arn`` values from the executions
list), ``/diff/last-success?arn=ARN`` (a failed execution against the newest success of its
function), and the twin ``/api/v1/diff?a=&b=``.

Views gather a view model (``viewer.view_models.diff``) and render it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, redirect, render_template, request

from recorder.errors import ServiceError
from viewer import get_durascope
from viewer.api_v1 import service_error, view_error
from viewer.view_models.common import ViewError
from viewer.view_models.diff import build_diff, last_success_arn

bp = Blueprint("diff_pages", __name__, template_folder="templates")
api = Blueprint("diff_api", __name__, url_prefix="/api/v1")
api.register_error_handler(ViewError, view_error)
api.register_error_handler(ServiceError, service_error)


@bp.get("/diff")
def diff_page() -> Any:
    # With nothing to compare yet, the page is the form that asks for two executions.
    view = build_diff(get_durascope(current_app), request.args) if request.args else None
    return render_template("diff.html", v=view)


@bp.get("/diff/last-success")
def last_success() -> Any:
    arn = (request.args.get("arn") or "").strip()
    if not arn:
        raise ViewError("Give the execution to compare: /diff/last-success?arn=ARN")
    good = last_success_arn(get_durascope(current_app), arn)
    return redirect("/diff?" + urlencode({"a": good, "b": arn}), 303)


@api.get("/diff")
def diff() -> Any:
    return jsonify(build_diff(get_durascope(current_app), request.args).to_json())
