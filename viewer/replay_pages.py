"""The replay check on the execution page: a form that runs it for the function's
registered handler and shows the result in place, and its JSON twin
``POST /api/v1/executions/<arn>/replay-check``.

The check runs the handler in a child interpreter (``recorder.replay``) and takes about a
second; nothing is written.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify

from recorder.errors import ServiceError
from viewer import api_v1, get_durascope
from viewer.view_models.common import ViewError
from viewer.view_models.replay import build_replay_check

bp = Blueprint("replay_pages", __name__, template_folder="templates")
api_bp = Blueprint("replay_api", __name__, url_prefix="/api/v1")
api_bp.register_error_handler(ViewError, api_v1.view_error)
api_bp.register_error_handler(ServiceError, api_v1.service_error)


@bp.post("/executions/<path:arn>/replay-check")
def replay_check(arn: str) -> Any:
    from viewer import pages

    check = build_replay_check(get_durascope(current_app), arn)
    return pages.execution(check.arn, replay=check)


@api_bp.post("/executions/<path:arn>/replay-check")
def replay_check_json(arn: str) -> Any:
    return jsonify(build_replay_check(get_durascope(current_app), arn).to_json())
