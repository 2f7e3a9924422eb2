"""The HTML viewer: execution list, execution page (failure, graph, timeline, operations,
waiting-on, actions), one operation, event table, logs; the feed and webhook pages
(``viewer.feed_pages``) hang off the same blueprint.

Views only gather a view model (``viewer.view_models``) and render it; everything the
templates show is prepared there, and ``/api/v1`` (``viewer.api_v1``, nested here so the
app registers one blueprint) serves the same models as JSON.

Errors: bad input is a readable HTML 400 page, an unknown execution a 404 page, an unknown
URL a 404 page for a browser (``Accept: text/html``). The Lambda REST API's paths, and API
clients anywhere else, keep the AWS error shape of ``viewer.lambda_api``; everything under
``/api/v1`` has its JSON shape (see ``_not_found``).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    send_file,
)
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from recorder.errors import ServiceError
from recorder.queries import iter_history
from viewer import (api_v1, cost_pages, diff_pages, errors_pages, feed_pages, functions_pages, get_durascope, lambda_api,
                    replay_pages, waiting_pages)
from viewer.timeline import build_timeline
from viewer.view_models.common import ViewError, format_duration, plural, validate_callback_payload
from viewer.graph import build_graph
from viewer.view_models.cost import build_execution_cost
from viewer.view_models.execution import build_execution, build_operation, detail_of, full_payload
from viewer.view_models.executions import ListFilters, build_execution_list, filtered_arns
from viewer.view_models.history import EventFilters, build_event_page, build_logs

bp = Blueprint("pages", __name__, template_folder="templates")


@bp.record_once
def _compact_templates(state: Any) -> None:
    # Block tags leave no blank lines behind: a 500-operation page was a third whitespace.
    state.app.jinja_env.trim_blocks = True
    state.app.jinja_env.lstrip_blocks = True

bp.register_blueprint(api_v1.bp)
bp.register_blueprint(feed_pages.bp)
bp.register_blueprint(errors_pages.bp)
bp.register_blueprint(errors_pages.api)
for _pages in (diff_pages, waiting_pages):
    bp.register_blueprint(_pages.bp)
    bp.register_blueprint(_pages.api)

bp.register_blueprint(replay_pages.bp)
bp.register_blueprint(replay_pages.api_bp)
bp.register_blueprint(functions_pages.bp)
bp.register_blueprint(functions_pages.api_bp)
bp.register_blueprint(cost_pages.api_bp)

VIEWER_PREFIXES = ("/executions/", "/api/v1/", "/feed", "/webhooks", "/errors", "/search", "/diff", "/waiting",
                   "/functions")
# The Lambda REST API (and the Runtime API of worker hosts): their clients get the AWS
# error shape whatever they accept.
AWS_PREFIXES = ("/2015-03-31/", "/2025-12-01/", "/2018-06-01/")
# Notices after a successful action: fixed texts chosen by key, so nothing from the
# query string is ever echoed into the page.
NOTICES = {
    "stopped": "Stop requested: the execution is stopping.",
    "callback-success": "Callback success sent.",
    "callback-failure": "Callback failure sent.",
    "callback-heartbeat": "Heartbeat sent.",
}


# --- template helpers -------------------------------------------------------------------------


@bp.app_template_filter("instant")
def _instant(ms: int | None) -> Markup | str:
    """An instant as ``<time>``: UTC text (what a page without JavaScript shows), turned into
    the browser's time zone by static/localtime.js, the UTC value kept in the tooltip."""
    if ms is None:
        return "—"
    iso, utc = _utc(ms)
    # Only digits and punctuation from an integer: nothing here needs escaping.
    return Markup(f'<time datetime="{iso}" title="{utc} UTC">{utc}</time>')


@bp.app_template_filter("instant_utc")
def _instant_utc(ms: int) -> str:
    """The UTC text alone, for where markup cannot go (``<option>`` labels, attributes)."""
    return _utc(ms)[1]


@bp.app_template_filter("instant_iso")
def _instant_iso(ms: int) -> str:
    return _utc(ms)[0]


def _utc(ms: int) -> tuple[str, str]:
    d = dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC)
    text = d.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return text.replace(" ", "T") + "Z", text


@bp.app_template_filter("duration")
def _duration(ms: int | None) -> str:
    return format_duration(ms)


@bp.app_template_filter("plural")
def _plural(n: int, singular: str, plural_form: str | None = None) -> str:
    return plural(n, singular, plural_form)


@bp.app_template_global("execution_url")
def execution_url(arn: str, page: str = "", **args: Any) -> str:
    """Link to an execution page. ARNs hold '/' and '$'; quote the rest of them."""
    return _with_args(f"/executions/{_quoted_arn(arn)}" + (f"/{page}" if page else ""), args)


@functools.lru_cache(maxsize=4096)
def _quoted_arn(arn: str) -> str:
    # A page links to its own execution once per operation; quoting an ARN goes character
    # by character in Python, so do it once (a pure function of the ARN: nothing to go stale).
    return quote(arn, safe="/:")


def _with_args(path: str, args: dict[str, Any]) -> str:
    from urllib.parse import urlencode

    return path + ("?" + urlencode(args, doseq=True) if args else "")


# --- errors -----------------------------------------------------------------------------------


def _wants_html() -> bool:
    """A browser: it asks for HTML before anything else (curl and SDKs send */* or JSON)."""
    accept = request.accept_mimetypes
    return accept.best_match(["application/json", "text/html"]) == "text/html" and \
        accept["text/html"] > accept["application/json"]


def _viewer_path(path: str) -> bool:
    return path == "/" or path.startswith(VIEWER_PREFIXES)


def error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, message=message), status


@bp.errorhandler(ViewError)
def _view_error(exc: ViewError) -> Any:
    return error_page(exc.status, exc.message)


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> Any:
    return error_page(min(500, exc.status), exc.message)


@bp.app_errorhandler(404)
@bp.app_errorhandler(405)
def _not_found(exc: HTTPException) -> Any:
    # Registered app-wide because routing errors belong to no blueprint. Only the viewer's
    # own paths get the HTML page (or JSON under /api/v1); the rest keeps the AWS shape.
    if request.path.startswith("/api/v1/"):
        return api_v1.error_json(exc.code or 404, exc.description or exc.name)
    if _viewer_path(request.path) or (_wants_html() and not request.path.startswith(AWS_PREFIXES)):
        return error_page(exc.code or 404, "There is no page here." if exc.code == 404 else
                          f"{request.method} is not allowed here.")
    return lambda_api.http_exception_response(exc)


# --- pages ------------------------------------------------------------------------------------


@bp.get("/")
def executions() -> Any:
    view = build_execution_list(get_durascope(current_app), ListFilters.from_args(request.args))
    return render_template("list.html", v=view)


@bp.get("/export.zip")
def export_zip() -> Response:
    """Every execution the list's filters match, as a zip of AWS history JSON files."""
    import os
    import tempfile
    from pathlib import Path

    from flask import send_file

    from recorder import transfer

    filters = ListFilters.from_args(request.args)
    fd, name = tempfile.mkstemp(prefix="durascope-export-", suffix=".zip")
    os.close(fd)
    try:
        ds = get_durascope(current_app)
        transfer.export_bulk(ds.db, filtered_arns(ds, filters), Path(name), "zip")
        resp = send_file(name, mimetype="application/zip", as_attachment=True,
                         download_name="durascope-executions.zip")
    except BaseException:
        os.unlink(name)
        raise
    resp.call_on_close(lambda: os.unlink(name))
    return resp


@bp.get("/executions/<path:arn>")
def execution(arn: str, form_error: dict[str, str] | None = None, status: int = 200, replay: Any = None) -> Any:
    view = build_execution(get_durascope(current_app), arn)
    timeline = build_timeline(view)
    # The graph's panel opens on the failing operation: one red box, its error already shown.
    f = view.failure
    failing = view.operation(f.op_id) if f and f.op_id else None
    panel = detail_of(view, failing, f.lines, f.more_lines) if f and failing else None
    notice = NOTICES.get(request.args.get("notice", ""))
    cost = build_execution_cost(get_durascope(current_app), arn)
    return render_template("execution.html", v=view, t=timeline, g=build_graph(view), panel=panel, notice=notice,
                           form_error=form_error or {}, replay=replay, cost=cost), status


@bp.get("/executions/<path:arn>/operations/<op_id>")
def operation(arn: str, op_id: str) -> Any:
    """One operation: its own page, the graph panel's content (``?partial=1``), or the
    body of its entry in the operations list (``?partial=body``)."""
    detail = build_operation(get_durascope(current_app), arn, op_id)
    partial = request.args.get("partial")
    if partial in ("1", "body"):
        return render_template("_operation_fragment.html", d=detail, body_only=partial == "body")
    return render_template("operation.html", v=detail)


@bp.get("/executions/<path:arn>/history.json")
def history_json(arn: str) -> Response:
    # All pages joined, in the GetDurableExecutionHistory event shape (epoch seconds).
    events = list(iter_history(get_durascope(current_app).db, arn, True))
    body = json.dumps({"Events": events}, indent=1)
    name = arn.rsplit("/", 1)[-1]
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="history-{name}.json"'})


@bp.get("/executions/<path:arn>/payload")
def payload(arn: str) -> Response:
    text = full_payload(get_durascope(current_app), arn, request.args.get("kind", ""), request.args.get("op"),
                        raw=request.args.get("raw") == "1")
    return Response(text, mimetype="text/plain",
                    headers={"Content-Disposition": 'attachment; filename="payload.json"',
                             "X-Content-Type-Options": "nosniff"})


@bp.get("/executions/<path:arn>/events")
def events(arn: str) -> Any:
    view = build_event_page(get_durascope(current_app), arn, EventFilters.from_args(request.args))
    return render_template("events.html", v=view, ex=build_execution_header(arn))


@bp.get("/executions/<path:arn>/logs")
def logs(arn: str) -> Any:
    view = build_logs(get_durascope(current_app), arn, request.args)
    return render_template("logs.html", v=view, ex=build_execution_header(arn))


def build_execution_header(arn: str) -> Any:
    return get_durascope(current_app).describe(arn)


# --- actions ----------------------------------------------------------------------------------


@bp.post("/executions/<path:arn>/stop")
def stop(arn: str) -> Any:
    try:
        get_durascope(current_app).stop(arn)
    except ServiceError as exc:
        return execution(arn, {"stop": exc.message}, 400)
    return redirect(execution_url(arn, notice="stopped"), 303)


@bp.post("/executions/<path:arn>/callback")
def callback(arn: str) -> Any:
    ds = get_durascope(current_app)
    callback_id = request.form.get("callback_id", "")
    action = request.form.get("action", "")
    try:
        if action not in ("success", "failure", "heartbeat"):
            raise ViewError("Choose success, failure or heartbeat")
        if action == "success":
            body = validate_callback_payload(request.form.get("payload", ""))
            ds.callback_success(callback_id, body or None)
        elif action == "failure":
            error: dict[str, Any] = {}
            if request.form.get("error_type", "").strip():
                error["ErrorType"] = request.form["error_type"].strip()
            if request.form.get("error_message", "").strip():
                error["ErrorMessage"] = request.form["error_message"].strip()
            data = validate_callback_payload(request.form.get("payload", ""))
            if data:
                error["ErrorData"] = data
            ds.callback_failure(callback_id, error)
        else:
            ds.callback_heartbeat(callback_id)
    except (ViewError, ServiceError) as exc:
        # Shown next to the form it came from, with the page around it.
        return execution(arn, {callback_id: exc.message}, 400)
    return redirect(execution_url(arn, notice=f"callback-{action}") + "#waiting", 303)


@bp.get("/favicon.ico")
def favicon() -> Response:
    # Browsers ask for /favicon.ico whatever the page links; the SVG serves both.
    return send_file(os.path.join(os.path.dirname(__file__), "static", "favicon.svg"), mimetype="image/svg+xml",
                     max_age=86400)
