"""Per-function statistics: ``/functions`` (every function's last 24 h at a glance) and
``/functions/<name>`` (statuses over time, steps, active against suspended time,
invocations, callback waits), their JSON twins ``/api/v1/functions`` and
``/api/v1/functions/<name>/stats?since=&until=``, and the plotly.js the charts are drawn
with, served from the installed ``plotly`` package (never a CDN: the viewer works offline).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request, send_file
from werkzeug.exceptions import NotFound

from recorder.errors import ServiceError
from viewer import api_v1, get_durascope
from viewer.view_models.common import ViewError
from viewer.view_models.functions import build_function_page, build_functions_index

bp = Blueprint("functions_pages", __name__, template_folder="templates")
api_bp = Blueprint("functions_api", __name__, url_prefix="/api/v1")
api_bp.register_error_handler(ViewError, api_v1.view_error)
api_bp.register_error_handler(ServiceError, api_v1.service_error)


def _plotly_js() -> Path | None:
    try:
        import plotly  # type: ignore[import-untyped]
    except ImportError:
        return None
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


@bp.get("/assets/plotly.min.js")
def plotly_js() -> Any:
    path = _plotly_js()
    if path is None:
        raise NotFound("plotly is not installed (pip install 'plotly>=5')")
    return send_file(path, mimetype="text/javascript", max_age=86400)


@bp.get("/functions")
def functions_index() -> Any:
    return render_template("functions.html", v=build_functions_index(get_durascope(current_app), request.args))


@bp.get("/functions/<name>")
def function_page(name: str) -> Any:
    return render_template("function.html", v=build_function_page(get_durascope(current_app), name, request.args))


@api_bp.get("/functions")
def functions_index_json() -> Any:
    return jsonify(build_functions_index(get_durascope(current_app), request.args).to_json())


@api_bp.get("/functions/<name>/stats")
def function_stats_json(name: str) -> Any:
    return jsonify(build_function_page(get_durascope(current_app), name, request.args).to_json())
