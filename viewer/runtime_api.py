"""Endpoints worker hosts poll for invocations (``durascope worker --engine URL``).

The worker host serves the real Lambda Runtime API to ``awslambdaric`` and relays it
here, per function:

    GET  /durascope/runtime/functions                          registered functions (handler, env, timeout)
    GET  /durascope/runtime/{function}/next?wait=S&worker=ID    200 + event and Lambda-Runtime-* headers, or 204
    POST /durascope/runtime/{function}/invocation/{id}/response the handler's output
    POST /durascope/runtime/{function}/invocation/{id}/error    {errorType, errorMessage, stackTrace}
    POST /durascope/runtime/{function}/invocation/{id}/logs     {"Lines": [{ts_ms, level, message}], "Dropped": n}
    POST /durascope/runtime/watch?wait=S                        {"RequestIds": [...]} -> {"Gone": [...]}

Bodies are bounded as in Lambda: a response over 6 MB fails its invocation with
``Function.ResponseSizeTooLarge``; an invocation's output is capped like in-process
output (``recorder.engine.logs``), once per invocation.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import Blueprint, Response, current_app, request

from recorder.engine.boundary import RESPONSE_LIMIT, RESPONSE_TOO_LARGE
from recorder.errors import (
    InvalidParameterValueException,
    RequestTooLargeException,
    ResourceConflictException,
    ServiceError,
)
from recorder.worker_backend import LOGS_BODY_LIMIT, RuntimeOutput, store_worker_logs
from viewer import get_durascope

bp = Blueprint("runtime_api", __name__, url_prefix="/durascope/runtime")


def _pool() -> Any:
    pool = getattr(get_durascope(current_app), "workers", None)
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


def _body(limit: int) -> bytes | None:
    """The request body, or None when it is over ``limit`` (refused from its declared
    length before any of it is read)."""
    length = request.content_length
    if length is not None and length > limit:
        return None
    # get_data, not the stream: the signature check may have read (and cached) the body.
    data = request.get_data()
    return None if len(data) > limit else data


def _wait_seconds(default: float) -> float:
    """The ``wait`` of a long poll: 0 to 60 seconds."""
    try:
        wait = float(request.args.get("wait", default))
    except ValueError:
        wait = math.nan
    if not math.isfinite(wait):
        raise InvalidParameterValueException("wait must be a number of seconds")
    return min(max(wait, 0.0), 60.0)


def _too_large(limit: int) -> RequestTooLargeException:
    return RequestTooLargeException(f"Exceeded maximum allowed payload size ({limit} bytes).")


def _answered(known: bool) -> Response:
    return _json({} if known else {"Message": "unknown or finished invocation"}, 202 if known else 410)


@bp.get("/functions")
def functions() -> Response:
    ds = get_durascope(current_app)
    return _json({"Functions": [ds.worker_config(f).to_dict() for f in ds.control.list_functions()]})


@bp.get("/<function>/next")
def next_invocation(function: str) -> Response:
    wait = _wait_seconds(20.0)
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
    pool = _pool()
    body = _body(RESPONSE_LIMIT)
    if body is None:
        # What Lambda does with a response over its limit: the invocation fails.
        pool.fail(request_id, RESPONSE_TOO_LARGE)
        raise _too_large(RESPONSE_LIMIT)
    return _answered(pool.respond(request_id, body))


@bp.post("/<function>/invocation/<request_id>/error")
def error(function: str, request_id: str) -> Response:
    pool = _pool()
    data = _body(RESPONSE_LIMIT)
    if data is None:
        pool.fail(request_id, RESPONSE_TOO_LARGE)
        raise _too_large(RESPONSE_LIMIT)
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        raise InvalidParameterValueException("the error body must be JSON") from None
    if not isinstance(body, dict):
        raise InvalidParameterValueException("the error body must be a JSON object")
    return _answered(pool.fail(request_id, body))


@bp.post("/<function>/invocation/<request_id>/logs")
def logs(function: str, request_id: str) -> Response:
    pool = _pool()
    data = _body(LOGS_BODY_LIMIT)
    if data is None:
        raise _too_large(LOGS_BODY_LIMIT)
    try:
        body = json.loads(data or b"{}")
        lines, dropped = body.get("Lines", []), body.get("Dropped", 0)
    except (ValueError, AttributeError):
        raise InvalidParameterValueException("logs must be {\"Lines\": [...], \"Dropped\": n}") from None
    if not isinstance(lines, list) or not isinstance(dropped, int):
        raise InvalidParameterValueException("Lines must be a list and Dropped a whole number")
    output = RuntimeOutput([ln for ln in lines if isinstance(ln, dict)], dropped)
    return _answered(store_worker_logs(pool, request_id, output))


@bp.post("/watch")
def watch() -> Response:
    """Which of a worker host's invocations this engine no longer waits for (long-poll)."""
    wait = _wait_seconds(10.0)
    try:
        ids = json.loads(_body(64 * 1024) or b"{}").get("RequestIds")
    except (ValueError, AttributeError):
        raise InvalidParameterValueException("watch takes {\"RequestIds\": [...]}") from None
    if not isinstance(ids, list) or not ids or len(ids) > 1000 or not all(isinstance(r, str) for r in ids):
        raise InvalidParameterValueException("RequestIds must be a list of 1 to 1000 request ids")
    return _json({"Gone": _pool().gone(ids, wait)})
