"""Endpoints worker hosts poll for invocations (``durascope worker --engine URL``).

The worker host serves the real Lambda Runtime API to ``awslambdaric`` and relays it
here, per function:

    GET  /durascope/runtime/functions                          registered functions (handler, env, timeout)
    GET  /durascope/runtime/{function}/next?wait=S&worker=ID    200 + event and Lambda-Runtime-* headers, or 204
    POST /durascope/runtime/{function}/invocation/{id}/response the handler's output
    POST /durascope/runtime/{function}/invocation/{id}/error    {errorType, errorMessage, stackTrace}
    POST /durascope/runtime/{function}/invocation/{id}/logs     {"Lines": [{ts_ms, level, message}]}
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, request

from recorder.errors import InvalidParameterValueException, ResourceConflictException, ServiceError
from recorder.worker import FunctionConfig, store_worker_logs

bp = Blueprint("runtime_api", __name__, url_prefix="/durascope/runtime")


def _pool() -> Any:
    pool = getattr(current_app.extensions["durascope"], "workers", None)
    if pool is None:
        raise ResourceConflictException("This engine runs handlers in-process; start it with worker processes "
                                        "(durascope serve --invoker workers) to attach workers")
    return pool


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> Response:
    resp = _json(exc.to_body(), exc.status)
    resp.headers["x-amzn-ErrorType"] = exc.code
    return resp


@bp.get("/functions")
def functions() -> Response:
    ds = current_app.extensions["durascope"]
    return _json({"Functions": [FunctionConfig(f.name, f.handler, f.code_dir, f.env, f.timeout).to_dict()
                                for f in ds.control.list_functions()]})


@bp.get("/<function>/next")
def next_invocation(function: str) -> Response:
    try:
        wait = min(max(float(request.args.get("wait", "20")), 0.0), 60.0)
    except ValueError:
        raise InvalidParameterValueException("wait must be a number of seconds") from None
    worker = (request.args.get("worker") or "anonymous")[:128]
    task = _pool().next(function, worker, wait)
    if task is None:
        return Response(status=204)
    resp = _json(task.event)
    resp.headers.update({
        "Lambda-Runtime-Aws-Request-Id": task.request_id,
        "Lambda-Runtime-Deadline-Ms": str(task.deadline_ms),
        "Lambda-Runtime-Invoked-Function-Arn": task.function_arn,
    })
    return resp


@bp.post("/<function>/invocation/<request_id>/response")
def response(function: str, request_id: str) -> Response:
    known = _pool().respond(request_id, request.get_data())
    return _json({} if known else {"Message": "unknown or finished invocation"}, 202 if known else 410)


@bp.post("/<function>/invocation/<request_id>/error")
def error(function: str, request_id: str) -> Response:
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError:
        raise InvalidParameterValueException("the error body must be JSON") from None
    if not isinstance(body, dict):
        raise InvalidParameterValueException("the error body must be a JSON object")
    known = _pool().fail(request_id, body)
    return _json({} if known else {"Message": "unknown or finished invocation"}, 202 if known else 410)


@bp.post("/<function>/invocation/<request_id>/logs")
def logs(function: str, request_id: str) -> Response:
    try:
        lines = json.loads(request.get_data() or b"{}").get("Lines", [])
    except (ValueError, AttributeError):
        raise InvalidParameterValueException("logs must be {\"Lines\": [...]}") from None
    if not isinstance(lines, list):
        raise InvalidParameterValueException("Lines must be a list")
    store_worker_logs(_pool(), request_id, [ln for ln in lines if isinstance(ln, dict)])
    return _json({}, 202)
