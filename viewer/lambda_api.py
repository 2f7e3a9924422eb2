"""The Lambda-compatible REST API (spec section 7), so boto3 and the AWS CLI work unchanged.

Routing is done here on the **raw, percent-encoded** request path, not by Flask's URL
map: durable-execution ARNs and CallbackIds contain ``/`` (botocore sends it as
``%2F``), and a decoded path cannot be split safely (spec pitfall 15). A
``before_app_request`` hook claims every path under ``/2015-03-31/`` and
``/2025-12-01/``; anything there that is not an operation gets an AWS-shaped 404.
If a server gives no raw URI (``RAW_URI``/``REQUEST_URI``), or a client sends ``/``
unencoded, the label is re-joined from the decoded segments (see ``_arn_and_action``).

Every response carries ``x-amzn-RequestId``; every error carries the HTTP status,
``x-amzn-ErrorType: <Exception>`` and the JSON body ``{"Type", "message"|"Message"}``
the model spells (``ServiceError.to_body``). Bad input is a 4xx, never a 500.
Timestamps in responses are epoch seconds with fraction; timestamps in query strings
are ISO-8601 (what botocore sends) or epoch seconds.

Who may call it is decided for the whole app in ``viewer.access`` (SigV4 when
``DURASCOPE_ACCESS_KEYS`` is set), before this module's hook runs.
"""

from __future__ import annotations

import base64
import datetime as dt
import inspect
import json
import logging
import re
import uuid
from typing import Any
from urllib.parse import unquote

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import HTTPException

from recorder.api import Durascope
from recorder.arns import NAME_RE, ExecutionArn, parse_function_name
from recorder.engine import tokens
from recorder.errors import (
    InvalidParameterValueException,
    RequestTooLargeException,
    ResourceNotFoundException,
    ServiceError,
)
from recorder.queries import history_page, list_executions
from recorder.store.availability import DatabaseUnavailable
from recorder.wire import ErrorObject, ts_seconds
from viewer import get_durascope
from viewer.rawpath import raw_path

log = logging.getLogger("durascope.api")

bp = Blueprint("lambda_api", __name__)

INVOKE_VERSION = "2015-03-31"
DURABLE_VERSION = "2025-12-01"
PREFIXES = (f"/{INVOKE_VERSION}/", f"/{DURABLE_VERSION}/")

MIB = 1024 * 1024
SYNC_PAYLOAD_LIMIT = 6 * MIB  # Invoke RequestResponse (spec 7.4)
ASYNC_PAYLOAD_LIMIT = 1 * MIB  # Invoke Event
BODY_LIMIT = 6 * MIB  # every other body
# A checkpoint may carry an EXECUTION result of up to 6 MiB (spec 2.2) plus the envelope.
CHECKPOINT_BODY_LIMIT = 7 * MIB

EXECUTION_ACTIONS = frozenset({"checkpoint", "state", "history", "stop", "pause", "resume"})
CALLBACK_ACTIONS = frozenset({"succeed", "fail", "heartbeat"})
CALLBACK_ID_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
CLIENT_TOKEN_RE = re.compile(r"^[\x21-\x7e]{1,64}$")
_MIN_MS = -62_135_596_800_000  # 0001-01-01
_MAX_MS = 253_402_300_799_999  # 9999-12-31
INVOCATION_TYPES = frozenset({"RequestResponse", "Event", "DryRun"})


# --- errors the control plane has no class for --------------------------------------------


class InvalidRequestContentException(ServiceError):
    """Invoke with a body that is not JSON (what Lambda answers)."""

    code = "InvalidRequestContentException"
    status = 400
    message_key = "message"


class NotSupportedYet(ServiceError):
    """An operation this server routes but whose control-plane method does not exist yet."""

    code = "ServiceException"
    status = 501


class ServiceUnavailable(ServiceError):
    """The database cannot be used now (restarting, unreachable, disk full): 503, which
    AWS clients retry, with Retry-After. botocore types it by the code, as any Lambda fault."""

    code = "ServiceException"
    status = 503


def unknown_operation() -> ResourceNotFoundException:
    # Real Lambda answers UnknownOperationException (404); botocore has no class for it,
    # a ResourceNotFoundException gives clients a typed error with the same meaning.
    return ResourceNotFoundException(f"Unknown operation: {request.method} {_raw_path()[:300]}")


# --- responses ------------------------------------------------------------------------------


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status,
                    mimetype="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def error_response(exc: ServiceError) -> Response:
    resp = _json(exc.to_body(), exc.status, {"x-amzn-ErrorType": exc.code, "x-amzn-RequestId": str(uuid.uuid4())})
    if exc.status == 429:
        resp.headers["Retry-After"] = "1"
    return resp


def unavailable_response(exc: DatabaseUnavailable) -> Response:
    resp = error_response(ServiceUnavailable(exc.outage.message))
    resp.headers["Retry-After"] = str(exc.outage.retry_after_seconds)
    return resp


@bp.app_errorhandler(DatabaseUnavailable)
def _database_unavailable(exc: DatabaseUnavailable) -> Response:
    # Every route of the app, not only this blueprint's: the outage was logged once when it
    # began (recorder.store.availability), so no traceback per request.
    resp = unavailable_response(exc)
    resp.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return resp


def http_exception_response(exc: HTTPException) -> Response:
    """Map a werkzeug/Flask HTTP error to the AWS error shape."""
    code = exc.code or 500
    err: ServiceError
    if code in (404, 405):
        err = unknown_operation()
    elif code == 413:
        err = RequestTooLargeException("Request body is too large")
    elif 400 <= code < 500:
        err = InvalidParameterValueException(exc.description or exc.name)
    else:
        err = ServiceError(exc.description or exc.name)
    return error_response(err)


# --- request parsing -----------------------------------------------------------------------


def _raw_path() -> str:
    return raw_path(request.environ)


def claims(path: str) -> bool:
    """Whether a raw request path is this API's (it routes on the raw path, not Flask's map)."""
    return path.startswith(PREFIXES)


def execution_route(path: str) -> tuple[str, str | None] | None:
    """``(arn, action)`` of a raw path under ``/2025-12-01/durable-executions/``, else None."""
    segments = path.split("/")[1:]
    if len(segments) < 3 or segments[0] != DURABLE_VERSION or segments[1] != "durable-executions":
        return None
    return _arn_and_action(segments[2:])


def body_limit(method: str, path: str, invocation_type: str | None) -> int:
    """The most a request to this path may carry, known before its body is read."""
    segments = path.split("/")
    if method == "POST" and len(segments) >= 2 and segments[1] == INVOKE_VERSION:
        return ASYNC_PAYLOAD_LIMIT if invocation_type == "Event" else SYNC_PAYLOAD_LIMIT
    if method == "POST" and segments[-1] == "checkpoint":
        return CHECKPOINT_BODY_LIMIT
    return BODY_LIMIT


def _arn(text: str) -> str:
    ExecutionArn.parse(text)  # InvalidParameterValueException for a malformed ARN
    return text


def _looks_like_arn(text: str) -> bool:
    try:
        ExecutionArn.parse(text)
        return True
    except ServiceError:
        return False


def _arn_and_action(segments: list[str]) -> tuple[str, str | None]:
    """Split ``{Arn}[/{action}]``. Normally the ARN is one segment (``/`` sent as %2F);
    a client (or server) that left ``/`` decoded gives several segments, re-joined here."""
    if len(segments) == 1:
        return unquote(segments[0]), None
    if len(segments) == 2 and segments[1] in EXECUTION_ACTIONS:
        return unquote(segments[0]), segments[1]
    if segments[-1] in EXECUTION_ACTIONS:
        head = unquote("/".join(segments[:-1]))
        if _looks_like_arn(head):
            return head, segments[-1]
    return unquote("/".join(segments)), None


def _drain(length: int) -> None:
    """Read and drop a refused body so the client can read our answer (no reset)."""
    stream = request.environ.get("wsgi.input")
    remaining = min(length, current_app.config.get("MAX_CONTENT_LENGTH") or length)
    try:
        while stream is not None and remaining > 0:
            chunk = stream.read(min(65536, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
    except OSError:
        pass


def _body(limit: int) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        _drain(length)
        raise RequestTooLargeException(f"Request body must be at most {limit} bytes, got {length}")
    data = request.get_data(cache=True)
    if len(data) > limit:
        raise RequestTooLargeException(f"Request body must be at most {limit} bytes")
    return data


def _json_body(limit: int = BODY_LIMIT) -> dict[str, Any] | None:
    """The body as a JSON object; None when empty."""
    data = _body(limit)
    if not data.strip():
        return None
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidParameterValueException(f"Request body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise InvalidParameterValueException("Request body must be a JSON object")
    return obj


def _error_body() -> ErrorObject | None:
    """Stop and callback-failure bodies: a bare ErrorObject, optional (spec 7.2, pitfall 21)."""
    obj = _json_body()
    if not obj:
        return None
    return ErrorObject.parse(obj, "Error")


def _arg(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise InvalidParameterValueException(f"{name} may be given only once")
    return values[0] if values else None


def _bool_arg(name: str, default: bool) -> bool:
    raw = _arg(name)
    if raw is None or raw == "":
        return default
    low = raw.lower()
    if low not in ("true", "false"):
        raise InvalidParameterValueException(f"{name} must be true or false")
    return low == "true"


def _marker_arg() -> str | None:
    """``Marker``: every marker this server issues is standard base64 of a flat JSON object.
    Anything else is refused here, before a parser further in can choke on it (JSON nested
    deeply enough exhausts the decoder's recursion limit)."""
    marker = _arg("Marker") or None
    if marker is None:
        return None
    try:
        obj = json.loads(base64.b64decode(marker, validate=True))
    except (ValueError, RecursionError):
        obj = None
    if not isinstance(obj, dict) or any(isinstance(v, (dict, list)) for v in obj.values()):
        raise InvalidParameterValueException("Invalid Marker")
    return marker


def _max_items_arg() -> int | None:
    raw = _arg("MaxItems")
    if raw is None or raw == "":
        return None
    try:
        n = int(raw)
    except ValueError:
        raise InvalidParameterValueException("MaxItems must be a whole number") from None
    if not 0 <= n <= 1000:
        raise InvalidParameterValueException("MaxItems must be from 0 to 1000")
    # The model allows 0 (min 0); we read it as "the default page size".
    return n or None


def _time_arg(name: str) -> int | None:
    """ISO-8601 (what botocore sends) or epoch seconds → epoch ms."""
    raw = _arg(name)
    if raw is None or raw == "":
        return None
    bad = InvalidParameterValueException(f"{name} must be an ISO-8601 timestamp, got {raw[:64]!r}")
    try:
        ms = int(round(float(raw) * 1000))
    except (ValueError, OverflowError):
        try:
            value = dt.datetime.fromisoformat(raw.strip().replace(" ", "+"))
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.UTC)
            ms = int(round(value.timestamp() * 1000))
        except (ValueError, OverflowError, OSError):
            raise bad from None
    if not _MIN_MS <= ms <= _MAX_MS:
        raise bad
    return ms


def _optional_str(body: dict[str, Any], key: str, max_len: int) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidParameterValueException(f"{key} must be a string of at most {max_len} characters")
    return value


def _client_token(body: dict[str, Any]) -> str | None:
    value = body.get("ClientToken")
    if value is None:
        return None
    if not isinstance(value, str) or not CLIENT_TOKEN_RE.fullmatch(value):
        raise InvalidParameterValueException("ClientToken must be 1 to 64 printable ASCII characters")
    return value


# --- dispatch -------------------------------------------------------------------------------


@bp.before_app_request
def _intercept() -> Response | None:
    path = _raw_path()
    if not claims(path):
        return None
    request_id = str(uuid.uuid4())
    try:
        resp = _dispatch(path)
    except ServiceError as exc:
        resp = error_response(exc)
    except HTTPException as exc:
        resp = http_exception_response(exc)
    except DatabaseUnavailable as exc:
        resp = unavailable_response(exc)
    except Exception:  # noqa: BLE001 - a bug must still answer in the AWS shape
        log.exception("unexpected failure on %s %s", request.method, path[:300])
        resp = error_response(ServiceError("Internal failure; see the server log"))
    resp.headers["x-amzn-RequestId"] = request_id
    return resp


def _dispatch(path: str) -> Response:
    segments = path.split("/")[1:]
    method = request.method
    version, rest = segments[0], segments[1:]
    if version == INVOKE_VERSION:
        if len(rest) == 3 and rest[0] == "functions" and rest[2] == "invocations" and rest[1]:
            if method == "POST":
                return invoke(unquote(rest[1]))
        raise unknown_operation()
    if not rest:
        raise unknown_operation()
    kind = rest[0]
    if kind == "functions" and len(rest) == 3 and rest[2] == "durable-executions" and rest[1]:
        if method == "GET":
            return list_by_function(unquote(rest[1]))
        raise unknown_operation()
    if kind == "durable-executions" and len(rest) >= 2 and any(rest[1:]):
        arn, action = _arn_and_action(rest[1:])
        if action is None and len(rest) == 3 and _looks_like_arn(unquote(rest[1])):
            raise unknown_operation()  # {Arn}/{something that is not an operation}
        handler = _EXECUTION_ROUTES.get((method, action))
        if handler is None:
            raise unknown_operation()
        return handler(_arn(arn))
    if kind == "durable-execution-callbacks" and len(rest) >= 3 and rest[-1] in CALLBACK_ACTIONS:
        callback_id = unquote("/".join(rest[1:-1]))
        if method != "POST" or not callback_id:
            raise unknown_operation()
        if len(callback_id) > 1024 or not CALLBACK_ID_RE.fullmatch(callback_id):
            raise InvalidParameterValueException("CallbackId must be standard base64 of at most 1024 characters")
        return _CALLBACK_ROUTES[rest[-1]](callback_id)
    raise unknown_operation()


# --- Invoke ---------------------------------------------------------------------------------


def invoke(function: str) -> Response:
    ds = get_durascope(current_app)
    itype = request.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
    if itype not in INVOCATION_TYPES:
        raise InvalidParameterValueException("X-Amz-Invocation-Type must be RequestResponse, Event or DryRun")
    data = _body(ASYNC_PAYLOAD_LIMIT if itype == "Event" else SYNC_PAYLOAD_LIMIT)
    payload: str | None = None
    if data.strip():
        try:
            payload = data.decode("utf-8")
            json.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise InvalidRequestContentException(
                f"Could not parse request body into json: {str(exc)[:200]}") from None
    name = request.headers.get("X-Amz-Durable-Execution-Name") or None
    qualifier = _arg("Qualifier") or None
    ref = parse_function_name(function)
    version_headers = {"X-Amz-Executed-Version": "$LATEST"}
    if itype == "DryRun":
        q = qualifier or ref.qualifier
        if q not in (None, "$LATEST") or ds.control.get_function(ref.name) is None:
            raise ResourceNotFoundException(f"Function not found: {ds.control.function_arn(ref.name, q)}")
        if name is not None and not NAME_RE.fullmatch(name):
            raise InvalidParameterValueException("DurableExecutionName must match [a-zA-Z0-9-_]{1,64}")
        return Response(b"", status=204, headers=version_headers)
    started = ds.control.start_execution(function, payload, name, qualifier)
    headers = {"X-Amz-Durable-Execution-Arn": started.arn, **version_headers}
    if itype == "Event":
        return Response(b"", status=202, headers=headers)
    timeout = float(current_app.config.get("DURASCOPE_SYNC_INVOKE_TIMEOUT", 900.0))
    summary = _wait_terminal(ds, started.arn, timeout)
    if summary is None:
        headers["X-Amz-Function-Error"] = "Unhandled"
        return _json({"errorType": "Sandbox.Timedout",
                      "errorMessage": f"The durable execution is still running after {timeout:g} seconds; "
                                      "it goes on. Follow it with GetDurableExecution."}, 200, headers)
    if summary.status == "SUCCEEDED":
        body = summary.result if summary.result is not None else "null"
        return Response(body.encode("utf-8"), status=200, headers=headers, mimetype="application/json")
    # Spec 7.4 (unconfirmed): failed/timed-out/stopped → 200, Unhandled, Lambda's error body.
    err = summary.error or {}
    out: dict[str, Any] = {
        "errorType": err.get("ErrorType") or f"DurableExecution.{summary.status}",
        "errorMessage": err.get("ErrorMessage") or f"The durable execution ended {summary.status}",
    }
    if err.get("ErrorData") is not None:
        out["errorData"] = err["ErrorData"]
    if err.get("StackTrace"):
        out["stackTrace"] = err["StackTrace"]
    headers["X-Amz-Function-Error"] = "Unhandled"
    return _json(out, 200, headers)


def _wait_terminal(ds: Durascope, arn: str, timeout: float) -> Any:
    """The execution's summary once it is terminal, or None after ``timeout`` seconds (the
    engine may be this process, whose close wakes the wait, or another one)."""
    try:
        return ds.wait(arn, timeout)
    except TimeoutError:
        return None


# --- durable-execution routes ---------------------------------------------------------------


def get_execution(arn: str) -> Response:
    return _json(get_durascope(current_app).get_execution(arn, _bool_arg("IncludeExecutionData", True)))


def _history_marker() -> str | None:
    marker = _marker_arg()
    # A forged marker with an out-of-range EventId would fail in the database (a 500);
    # EventIds are 32-bit, so anything else is simply not a marker we issued.
    if marker is not None and not 0 <= tokens.parse_history_marker(marker) <= 2**31 - 1:
        raise InvalidParameterValueException("Invalid Marker")
    return marker


def get_history(arn: str) -> Response:
    page = history_page(get_durascope(current_app).db, arn, include_data=_bool_arg("IncludeExecutionData", True),
                        marker=_history_marker(), max_items=_max_items_arg(),
                        reverse=_bool_arg("ReverseOrder", False), ts=ts_seconds)
    out: dict[str, Any] = {"Events": page.events}
    if page.next_marker:
        out["NextMarker"] = page.next_marker
    return _json(out)


def get_state(arn: str) -> Response:
    token = _arg("CheckpointToken")
    return _json(get_durascope(current_app).control.get_state(arn, token, _marker_arg(), _max_items_arg(), ts=ts_seconds))


def checkpoint(arn: str) -> Response:
    body = _json_body(CHECKPOINT_BODY_LIMIT) or {}
    response = get_durascope(current_app).control.checkpoint(arn, body.get("CheckpointToken"), body.get("Updates"),
                                        _client_token(body), ts=ts_seconds)
    return _json(response)


def stop(arn: str) -> Response:
    end_ms = get_durascope(current_app).control.stop_execution(arn, _error_body())
    return _json({"StopTimestamp": ts_seconds(end_ms)})


def _control_method(name: str, operation: str) -> Any:
    method = getattr(get_durascope(current_app).control, name, None)
    if method is None:
        raise NotSupportedYet(f"{operation} is not supported by this server yet")
    return method


def _with_client_token(method: Any, client_token: str | None, *args: Any) -> Any:
    """Pass ``client_token`` only to a control-plane method that takes one."""
    try:
        takes = "client_token" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        takes = False
    return method(*args, client_token=client_token) if takes else method(*args)


def pause(arn: str) -> Response:
    body = _json_body() or {}
    reason = _optional_str(body, "Reason", 1024)
    timeout_paused = body.get("ExecutionTimeoutPaused")
    if timeout_paused is not None and not isinstance(timeout_paused, bool):
        raise InvalidParameterValueException("ExecutionTimeoutPaused must be a boolean")
    client_token = _client_token(body)
    _with_client_token(_control_method("pause_execution", "PauseDurableExecution"), client_token,
                       arn, reason, timeout_paused)
    return _json({}, 202)


def resume(arn: str) -> Response:
    body = _json_body() or {}
    reason = _optional_str(body, "Reason", 1024)
    client_token = _client_token(body)
    _with_client_token(_control_method("resume_execution", "ResumeDurableExecution"), client_token, arn, reason)
    return _json({}, 202)


def delete(arn: str) -> Response:
    deleted_ms = _control_method("delete_execution", "DeleteDurableExecution")(arn)
    return _json({"DeletionRequestTimestamp": ts_seconds(int(deleted_ms))}, 202)


_EXECUTION_ROUTES = {
    ("GET", None): get_execution,
    ("DELETE", None): delete,
    ("GET", "history"): get_history,
    ("GET", "state"): get_state,
    ("POST", "checkpoint"): checkpoint,
    ("POST", "stop"): stop,
    ("POST", "pause"): pause,
    ("POST", "resume"): resume,
}


# --- ListDurableExecutionsByFunction ----------------------------------------------------------


def list_by_function(function: str) -> Response:
    ds = get_durascope(current_app)
    ref = parse_function_name(function)
    qualifier = _arg("Qualifier") or ref.qualifier
    if qualifier not in (None, "$LATEST") or ds.control.get_function(ref.name) is None:
        raise ResourceNotFoundException(f"Function not found: {ds.control.function_arn(ref.name, qualifier)}")
    name = _arg("DurableExecutionName")
    if name is not None and not NAME_RE.fullmatch(name):
        raise InvalidParameterValueException("DurableExecutionName must match [a-zA-Z0-9-_]{1,64}")
    statuses = request.args.getlist("Statuses")
    if len(statuses) > 10:
        raise InvalidParameterValueException("Statuses may hold at most 10 items")
    page = list_executions(
        ds.db, ref.name, ds.control.function_arn, version=qualifier, name=name, statuses=statuses,
        started_after_ms=_time_arg("StartedAfter"), started_before_ms=_time_arg("StartedBefore"),
        reverse=_bool_arg("ReverseOrder", False), marker=_marker_arg(),
        max_items=_max_items_arg(), ts=ts_seconds)
    out: dict[str, Any] = {"DurableExecutions": page.executions}
    if page.next_marker:
        out["NextMarker"] = page.next_marker
    return _json(out)


# --- callbacks ------------------------------------------------------------------------------


def callback_succeed(callback_id: str) -> Response:
    # Raw body bytes are the result, stored verbatim (spec pitfall 21); the control
    # plane enforces the 1 MiB limit and refuses NUL characters.
    data = _body(BODY_LIMIT)
    get_durascope(current_app).control.callback_complete(callback_id, True, result=data or None)
    return _json({})


def callback_fail(callback_id: str) -> Response:
    get_durascope(current_app).control.callback_complete(callback_id, False, error=_error_body() or ErrorObject())
    return _json({})


def callback_heartbeat(callback_id: str) -> Response:
    _body(BODY_LIMIT)  # read (and ignore) whatever was sent
    get_durascope(current_app).control.callback_heartbeat(callback_id)
    return _json({})


_CALLBACK_ROUTES = {
    "succeed": callback_succeed,
    "fail": callback_fail,
    "heartbeat": callback_heartbeat,
}
