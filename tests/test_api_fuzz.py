"""A short hypothesis fuzz run over every route of the Lambda REST API (viewer/lambda_api.py),
on SQLite and PostgreSQL, through the Flask test client (no network).

Issue 4 and docs/protocol.md#invariants, 8: bad input gets an AWS-shaped 4xx and changes nothing, never a 500.
The example tests (test_lambda_api.py, test_checkpoint_errors.py) pin the cases someone
thought of; this run sends what nobody thought of: garbage path labels (ARNs, function
names, callback ids with unicode, slashes, percent-encoding, very long strings), query
parameters of the wrong type or repeated, forged markers, JSON of the wrong shape (random
checkpoint updates, error objects, pause/stop bodies), non-JSON and oversize bodies, odd
content types, wrong methods and Invoke headers, against a store that holds a running
execution with a live checkpoint token, a stopped execution, and callbacks that are live
(with and without an invocation running) or closed. Most requests are well-formed but for
one hostile part, so that they get past the first check to the deep ones; some carry free
text the store may not hold (U+0000, a long ErrorType) in otherwise valid requests.

Every request is checked on its own: the status is below 500; a 4xx carries the AWS error
shape; a 4xx (and any GET) leaves every table exactly as it was. Accepted writes are fine:
they become the new baseline, and the store is given a running execution and live
callbacks again. One test sends only checkpoints that are invalid by construction (one bad
field among good updates) and requires the refusal to name the bad update.

Examples are derandomized and counted (no deadline, no example database), so the run is
repeatable and takes a few seconds per test.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, text

from recorder.api import Durascope
from recorder.engine.control import InvocationInput, InvocationOutcome
from recorder.store.events import OPEN_STATUSES
from recorder.store.models import Callback, EngineState, Execution
from tests.test_lambda_api import AWS_ERRORS, assert_aws_error_shape, register_all, start_callback
from viewer import create_app

MIB = 1024 * 1024
FUZZ = settings(
    max_examples=75,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)
JSON_HEADERS = {"Content-Type": "application/json"}
Snapshot = dict[str, list[tuple[Any, ...]]]


# --- the store under fuzz ----------------------------------------------------------------------


@dataclass(repr=False)
class World:
    """A store with a running execution (live token, live callback), a stopped execution, an
    idle and a closed callback; ``send`` makes one request and checks the invariants above."""

    ds: Durascope
    client: FlaskClient
    arn: str = ""
    token: str = ""
    stale_token: str = ""
    live_callback: str = ""
    done_callback: str = ""
    idle_callback: str = ""
    stopped_arn: str = ""
    tables: list[str] = field(default_factory=list)
    baseline: Snapshot = field(default_factory=dict)
    ids_made: int = 0

    def __repr__(self) -> str:
        return f"World({self.arn!r}, token={self.token!r}, callback={self.live_callback!r})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # what hypothesis prints (not the snapshot)
        p.text(repr(self))

    def setup(self) -> None:
        control = self.ds.control
        stopped = control.start_execution("add-one", '{"a": 0}', "fuzz-stopped")
        control.stop_execution(stopped.arn)
        self.stopped_arn = stopped.arn
        self._new_execution()
        self.done_callback = self.live_callback
        control.callback_complete(self.done_callback, True, result=b'"done"')
        self.token, self.live_callback = self._start_callback(self.arn, self.token)
        self._new_idle_callback()
        self.tables = sorted(inspect(self.ds.db.engine).get_table_names())
        self.baseline = self.snapshot()

    def fresh(self) -> int:
        self.ids_made += 1
        return self.ids_made

    def _start_callback(self, arn: str, token: str) -> tuple[str, str]:
        return start_callback(self.ds, arn, token, f"cb-{self.fresh()}")

    def _begin(self) -> InvocationInput:
        started = self.ds.control.start_execution("approval", '{"timeout": 300}')
        inv = self.ds.control.begin_invocation(started.execution_id, "fuzz")
        assert inv is not None
        return inv

    def _new_execution(self) -> None:
        """The running execution: an invocation in progress, a live token and callback."""
        inv = self._begin()
        self.arn, self.stale_token = inv.arn, inv.token
        self.token, self.live_callback = self._start_callback(inv.arn, inv.token)

    def _new_idle_callback(self) -> None:
        """A callback whose execution has no invocation running (completing it closes it at once)."""
        inv = self._begin()
        _, self.idle_callback = self._start_callback(inv.arn, inv.token)
        self.ds.control.end_invocation(inv, InvocationOutcome.from_envelope({"Status": "PENDING"}))

    def _keep_live(self) -> None:
        """After an accepted write: a running execution with a token and started callbacks
        again, so the rest of the run still reaches the deep checks."""
        execution_id = self.arn.rsplit("/", 1)[1]
        with self.ds.db.read() as s:
            execution = s.get(Execution, execution_id)
            state = s.get(EngineState, execution_id)
            live_cb = s.get(Callback, self.live_callback)
            idle_cb = s.get(Callback, self.idle_callback)
        if execution is None or execution.status != "RUNNING" or state is None or not state.token:
            if execution is not None and execution.status in OPEN_STATUSES:
                self.ds.control.stop_execution(self.arn)
            self._new_execution()
        else:
            if state.token != self.token:
                self.stale_token, self.token = self.token, state.token
            if live_cb is None or live_cb.status != "STARTED":
                self.token, self.live_callback = self._start_callback(self.arn, self.token)
        if idle_cb is None or idle_cb.status != "STARTED":
            self._new_idle_callback()
        self.baseline = self.snapshot()

    def snapshot(self) -> Snapshot:
        with self.ds.db.read() as s:
            return {t: sorted((tuple(r) for r in s.execute(text(f"SELECT * FROM {t}"))), key=repr) for t in self.tables}

    def send(
        self, method: str, path: Any, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """One request; ``path`` and ``body`` may hold ``Live`` values and ``Label`` parts."""
        path = render(self, path)
        body = render(self, body)
        data = body if body is None or isinstance(body, (bytes, str)) else json.dumps(body).encode()
        what = f"{method} {path[:300]} body={(data or b'')[:300]!r} headers={headers}"
        resp = self.client.open(path, method=method, data=data, headers=headers or {})
        raw = resp.get_data()
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        result = (resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, parsed)
        status = result[0]
        assert status < 500, (what, result)
        assert result[1].get("x-amzn-requestid"), what
        if status >= 400 and method == "HEAD":  # a HEAD answer has no body
            assert AWS_ERRORS[result[1]["x-amzn-errortype"]][0] == status, (what, result)
        elif status >= 400:
            assert_aws_error_shape(result, what)
        if status >= 400 or method in ("GET", "HEAD"):
            after = self.snapshot()
            changed = [t for t in self.tables if after[t] != self.baseline[t]]
            assert not changed, (what, status, parsed, f"changed tables: {changed}")
        else:
            self._keep_live()
        return result


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    ds = Durascope.open(database_url, run_engine=False)
    try:
        register_all(ds)
        app = create_app(ds.settings, durascope=ds, DURASCOPE_SYNC_INVOKE_TIMEOUT=0.0)
        w = World(ds, app.test_client())
        w.setup()
        yield w
    finally:
        ds.close()


# --- values read from the store when the request is made ---------------------------------------------


@dataclass(frozen=True)
class Live:
    """A value of the world at request time (tokens, ARNs and callback ids change as accepted
    writes happen), optionally edited: ``Live("arn", "+\\n", lambda v: v + "\\n")``."""

    attr: str
    label: str = ""
    edit: Callable[[str], str] | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return f"Live({self.attr}{self.label})"

    def value(self, w: World) -> str:
        raw = getattr(w, self.attr)
        return self.edit(raw) if self.edit else raw


@dataclass(frozen=True)
class Label:
    """A path label, percent-encoded after it is resolved: ``safe`` as for ``quote``, None
    for encoded twice."""

    value: str | Live
    safe: str | None


def render(w: World, value: Any) -> Any:
    if isinstance(value, Live):
        return value.value(w)
    if isinstance(value, Label):
        raw = render(w, value.value)
        return quote(quote(raw, safe=""), safe="") if value.safe is None else quote(raw, safe=value.safe)
    if isinstance(value, tuple):  # a path: parts joined
        return "".join(render(w, v) for v in value)
    if isinstance(value, list):
        return [render(w, v) for v in value]
    if isinstance(value, dict):
        return {k: render(w, v) for k, v in value.items()}
    return value


def inserted(attr: str, at: int, junk_text: str) -> Live:
    return Live(attr, f"[{at}:]+={junk_text[:20]!r}", lambda v: v[:at] + junk_text + v[at:])


# --- hostile values ----------------------------------------------------------------------------


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """``one_of`` with weights (``one_of`` merges repeated branches, so repeating one does not
    weigh it): mostly well-formed requests reach the deep checks, the rest are any shape."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(lambda s: s)


NASTY = [
    "",
    " ",
    "/",
    "//",
    "%",
    "%2F",
    "%2f",
    "%zz",
    "%00",
    "%C0%AF",
    ".",
    "..",
    "../..",
    "\x00",
    "a\x00",
    "\n",
    "a\n",
    "\r\n",
    "\t",
    "$LATEST",
    "$LATEST.PUBLISHED",
    "1",
    "-1",
    "0",
    "1e400",
    "NaN",
    "null",
    "true",
    "[]",
    "{}",
    "é",
    "💥",
    "\u202e",
    "\ufeff",
    "\u0301",
    "a" * 65,
    "A" * 1025,
    "x" * 5000,
    "?",
    "#",
    "&",
    "=",
    "+",
    ";",
    "arn:aws:lambda:us-east-1:123456789012:function:add-one",
    "123456789012:function:add-one",
    "add-one:$LATEST",
    "add-one:7",
    "<script>",
    "' OR 1=1 --",
    "%%%",
    "QUJD",
    "QUJD==",
    "QUJD===",
]
junk = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=30),
    st.text(string.printable, max_size=60),
    st.binary(max_size=24).map(lambda b: b.decode("latin-1")),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(2**80), 2**80), st.floats(), junk)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(junk, inner, max_size=4), max_leaves=10
)

# Free text that validation may let through to the store: NUL, non-characters, long.
texts = weighted(
    (2, st.sampled_from(["\x00", "a\x00b", "\ufffe", "\U0010ffff", "\u2028", "é", "", "x" * 300])),
    (1, st.text(max_size=20)),
)
error_texts = st.fixed_dictionaries(
    {},
    optional={"ErrorMessage": texts, "ErrorType": texts, "ErrorData": texts, "StackTrace": st.lists(texts, max_size=3)},
)
# ErrorObjects of any shape (the body of stop and callback failure, the Error of an update).
error_objects = st.one_of(
    error_texts,
    st.fixed_dictionaries(
        {}, optional={k: st.one_of(junk, json_values) for k in ("ErrorMessage", "ErrorType", "ErrorData", "StackTrace")}
    ),
    json_values,
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


DEEP = b"[" * 5000
HOSTILE_MARKERS = [
    _b64(DEEP),
    _b64(b'{"p": ' + DEEP + b"}"),
    _b64(b"{" * 5000),
    _b64(b"\xff\xfe"),
    _b64(b'{"p": 1e400}'),
    _b64(b'{"p": NaN}'),
    _b64(b'{"p": 1.5}'),
    _b64(b'{"p": true}'),
    _b64(b'{"p": "1"}'),
    _b64(b'{"p": -1}'),
    _b64(b'{"p": 99999999999999999999}'),
    _b64(b'{"s": "1", "i": [], "f": 0}'),
    _b64(b'{"s": 1e400, "i": "x"}'),
    _b64(b'{"t": null, "s": 1}'),
    _b64(b"[]"),
    _b64(b'"p"'),
    _b64(b"1"),
    "bm90IGEgbWFya2Vy",
    "====",
    "QUJD\n",
]
markers = st.one_of(
    st.sampled_from(HOSTILE_MARKERS),
    junk,
    st.dictionaries(st.sampled_from(["p", "s", "i", "f", "t"]) | junk, json_values, max_size=4).map(
        lambda obj: _b64(json.dumps(obj).encode())
    ),
    st.binary(max_size=40).map(_b64),
)
timestamps = st.one_of(
    st.sampled_from(
        [
            "2025-01-01T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "0000-01-01",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "2025-01-01T00:00:00 05:00",
            "-0",
            "1e400",
            "inf",
            "nan",
            "-9999999999999",
            "2025-01-01T25:00:00",
        ]
    ),
    junk,
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(str),
    st.datetimes().map(lambda d: d.isoformat()),
)
QUERY_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "MaxItems": st.one_of(
        st.sampled_from(["0", "1", "1000", "1001", "-1", "1.5", "1e3", " 1", "0x10", "١"]),
        st.integers(-(2**70), 2**70).map(str),
        junk,
    ),
    "Marker": markers,
    "ReverseOrder": st.sampled_from(["true", "false", "TRUE", "False", "1", "0", "yes", "", "truee"]) | junk,
    "IncludeExecutionData": st.sampled_from(["true", "false", "FALSE", "1", "", "no"]) | junk,
    "Statuses": st.sampled_from(
        ["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED", "PAUSED", "running", "PENDING", ""]
    )
    | junk,
    "StartedAfter": timestamps,
    "StartedBefore": timestamps,
    "DurableExecutionName": st.sampled_from(["fuzz-stopped", "a" * 64, "a" * 65, "a\n", "a b", "\x00"]) | junk,
    "Qualifier": st.sampled_from(["$LATEST", "$LATEST.PUBLISHED", "1", "alias", ""]) | junk,
    "CheckpointToken": st.sampled_from([Live("token"), Live("stale_token")]) | junk,
}
VALID_QUERY: dict[str, st.SearchStrategy[Any]] = {
    "MaxItems": st.sampled_from(["1", "2", "1000"]),
    "ReverseOrder": st.sampled_from(["true", "false"]),
    "IncludeExecutionData": st.sampled_from(["true", "false"]),
    "Statuses": st.sampled_from(["RUNNING", "STOPPED"]),
    "StartedAfter": st.just("2020-01-01T00:00:00Z"),
    "StartedBefore": st.just("2100-01-01T00:00:00Z"),
    "DurableExecutionName": st.just("fuzz-stopped"),
    "Qualifier": st.just("$LATEST"),
    "CheckpointToken": st.just(Live("token")),
}
# One hostile parameter among valid ones, so that it is the one the server has to refuse.
one_hostile_param = st.tuples(
    st.fixed_dictionaries({}, optional=VALID_QUERY),
    st.sampled_from(sorted(QUERY_VALUES)).flatmap(lambda k: st.tuples(st.just(k), QUERY_VALUES[k])),
).map(lambda t: [*((k, v) for k, v in t[0].items() if k != t[1][0]), t[1]])
# Each known parameter at most once (often), plus repeated and unknown ones.
query_params = st.tuples(
    st.fixed_dictionaries({}, optional=QUERY_VALUES).map(lambda d: list(d.items())),
    st.lists(
        st.one_of(
            st.sampled_from(sorted(QUERY_VALUES)).flatmap(lambda k: st.tuples(st.just(k), QUERY_VALUES[k])),
            st.tuples(junk, junk),
        ),
        max_size=3,
    ),
).map(lambda t: t[0] + t[1])
SAFE_SETS = ["", "/", "/%:$+=", "/:@$+=&?#", "%"]


def query_string(pairs: list[tuple[Any, Any]], safe: str) -> tuple[Any, ...]:
    parts: list[Any] = []
    for i, (k, v) in enumerate(pairs):
        parts += ["?" if i == 0 else "&", Label(k, safe), "=", Label(v, safe)]
    return tuple(parts)


def labelled(label: st.SearchStrategy[Any]) -> st.SearchStrategy[Label]:
    """A label as clients (and attackers) send it: fully encoded, slashes left literal,
    percent signs left raw (bad escapes), or encoded twice."""
    return st.builds(Label, label, st.sampled_from([*SAFE_SETS, None]))


BODY_KEYS = [
    "CheckpointToken",
    "Updates",
    "ClientToken",
    "Reason",
    "ExecutionTimeoutPaused",
    "ErrorMessage",
    "ErrorType",
    "ErrorData",
    "StackTrace",
    "Error",
]
HOSTILE_BODIES = [
    b"{",
    b"}",
    DEEP,
    b"{" * 5000,
    b'{"a":' * 3000,
    b"\xff\xfe\x00",
    b"\x00",
    b'{"a":1}{"b":2}',
    "\ufeff{}".encode(),
    "{}".encode("utf-16"),
    b"null",
    b"true",
    b"1" * 500,
    b'"text"',
    b"NaN",
    b'{"Updates": NaN}',
    b'{"CheckpointToken": "\\u0000"}',
    b'{"ErrorMessage": "\\ud800"}',
    b'{"Reason": "\\u0000"}',
    b'{"ErrorMessage": "nul \\u0000 inside"}',
    b'{"StackTrace": ["\\u0000"]}',
    b" " * (6 * MIB + 1),
]
bodies = st.one_of(
    st.none(),
    st.just(b""),
    st.sampled_from(HOSTILE_BODIES),
    st.binary(max_size=100),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(BODY_KEYS) | junk, json_values, max_size=5),
)
CONTENT_TYPES = [
    None,
    "application/json",
    "application/x-amz-json-1.1",
    "text/plain",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
    "",
    "garbage",
]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


# --- path labels -----------------------------------------------------------------------------------

ARN_EDITS = [
    ("", lambda a: a),
    ("+\\n", lambda a: a + "\n"),
    (" unknown id", lambda a: a.rsplit("/", 1)[0] + "/unknown-id"),
    (" upper", str.upper),
    (" version 7", lambda a: a.replace("$LATEST", "7")),
    (" other account", lambda a: a.replace("123456789012", "210987654321")),
    ("+/history", lambda a: a + "/history"),
    (" too long", lambda a: a + "x" * 1024),
    (" no id", lambda a: a.rsplit("/", 1)[0]),
    (" region", lambda a: a.replace("us-east-1", "us-east-1\x00")),
]
arns = st.one_of(
    st.sampled_from([Live(attr, label, edit) for attr in ("arn", "stopped_arn") for label, edit in ARN_EDITS]),
    st.builds(inserted, st.just("arn"), st.integers(0, 120), junk),
    junk,
)
functions = weighted(
    (2, st.sampled_from(["add-one", "approval", "arn:aws:lambda:us-east-1:123456789012:function:add-one:$LATEST"])),
    (
        1,
        st.sampled_from(
            [
                "no-such-function",
                "add-one:$LATEST",
                "add-one:1",
                "add-one:alias",
                "add-one\n",
                "ADD-ONE",
                "arn:aws:lambda:us-east-1:123456789012:function:add-one",
                "arn:aws:lambda:eu-west-1:123456789012:function:add-one",
                "123456789012:function:add-one",
                "123456789012:function:add-one:$LATEST.PUBLISHED",
            ]
        ),
    ),
    (1, junk),
)
callbacks = weighted(
    (4, st.sampled_from([Live("live_callback"), Live("idle_callback"), Live("done_callback")])),
    (
        1,
        st.one_of(
            st.sampled_from(
                [
                    Live("live_callback", "+\\n", lambda c: c + "\n"),
                    Live("live_callback", "[:-4]", lambda c: c[:-4]),
                    Live("live_callback", "+===", lambda c: c.rstrip("=") + "==="),
                    _b64(b'{"e":"x","o":"y","n":"z"}'),
                    "QUJD",
                ]
            ),
            st.builds(inserted, st.just("live_callback"), st.integers(0, 120), junk),
            st.binary(max_size=40).map(_b64),
            junk,
        ),
    ),
)
EXECUTION_ROUTES = [
    ("GET", ""),
    ("DELETE", ""),
    ("GET", "/history"),
    ("GET", "/state"),
    ("POST", "/checkpoint"),
    ("POST", "/stop"),
    ("POST", "/pause"),
    ("POST", "/resume"),
]
routes = st.one_of(
    labelled(functions).map(lambda f: ("POST", ("/2015-03-31/functions/", f, "/invocations"))),
    labelled(functions).map(lambda f: ("GET", ("/2025-12-01/functions/", f, "/durable-executions"))),
    st.tuples(st.sampled_from(EXECUTION_ROUTES), labelled(arns)).map(
        lambda t: (t[0][0], ("/2025-12-01/durable-executions/", t[1], t[0][1]))
    ),
    st.tuples(st.sampled_from(["succeed", "fail", "heartbeat"]), labelled(callbacks)).map(
        lambda t: ("POST", ("/2025-12-01/durable-execution-callbacks/", t[1], "/" + t[0]))
    ),
)
# Paths under the API prefixes (and near misses) that are no route at all.
nowhere = st.tuples(
    st.sampled_from(METHODS),
    st.sampled_from(["2015-03-31", "2025-12-01", "2025-12-02", "2015-03-30"]),
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "functions",
                    "durable-executions",
                    "durable-execution-callbacks",
                    "invocations",
                    "checkpoint",
                    "state",
                    "history",
                    "succeed",
                    "",
                ]
            ),
            labelled(junk),
        ),
        max_size=6,
    ),
).map(lambda t: (t[0], ("/", t[1], *[p for seg in t[2] for p in ("/", seg)])))
request_lines = st.one_of(routes, st.tuples(st.sampled_from(METHODS), routes).map(lambda t: (t[0], t[1][1])), nowhere)


# --- checkpoint updates ----------------------------------------------------------------------------

OP_TYPES = ["EXECUTION", "CONTEXT", "STEP", "WAIT", "CALLBACK", "CHAINED_INVOKE"]
ACTIONS = ["START", "SUCCEED", "FAIL", "RETRY", "CANCEL"]
OPTION_KEYS = {
    "StepOptions": ["NextAttemptDelaySeconds"],
    "WaitOptions": ["WaitSeconds"],
    "CallbackOptions": ["TimeoutSeconds", "HeartbeatTimeoutSeconds"],
    "ContextOptions": ["ReplayChildren"],
    "ChainedInvokeOptions": ["FunctionName", "TenantId"],
}
EXECUTION_ID = Live("arn", " id", lambda a: a.rsplit("/", 1)[1])
op_ids = st.one_of(
    st.sampled_from(["s1", "s2", "w1", "c1", "ctx", "cb-1", "a" * 64, EXECUTION_ID]),
    st.sampled_from(["", "a" * 65, "bad id", "s1\n", "é"]),
    junk,
)
seconds = st.one_of(
    st.integers(-2, 5),
    st.sampled_from([31_622_400, 31_622_401, 99_999_999, 100_000_000, 2**63]),
    st.floats(),
    st.booleans(),
    junk,
)
option_values = st.one_of(
    seconds, st.sampled_from(["add-one", "approval", "no-such-function", "", "\x00"]), json_values
)
payloads = st.one_of(st.sampled_from(["1", '"x"', "\x00", "nul \x00 inside", "\ud7ff", "x" * 1000]), junk, json_values)


def options(kind: str) -> st.SearchStrategy[Any]:
    return st.one_of(st.fixed_dictionaries({}, optional={k: option_values for k in OPTION_KEYS[kind]}), json_values)


# Mostly plausible (valid types and actions on a few ids, so batches start and finish
# operations and reach the payload and option checks), sometimes anything.
random_updates = st.one_of(
    st.fixed_dictionaries(
        {
            "Id": op_ids,
            "Type": st.sampled_from(OP_TYPES),
            "Action": st.sampled_from(ACTIONS),
        },
        optional={
            "ParentId": op_ids | st.none(),
            "Name": st.sampled_from(["n", "x" * 256, "x" * 257, "a\n", "\x00"]) | junk | st.none(),
            "SubType": st.sampled_from(["Step", "Wait", "Callback", "RunInChildContext", "Map", "Parallel"]) | junk,
            "Payload": payloads,
            "Error": error_objects,
            **{kind: options(kind) for kind in OPTION_KEYS},
        },
    ),
    st.dictionaries(
        st.sampled_from(["Id", "Type", "Action", "ParentId", "Payload", *OPTION_KEYS]) | junk, json_values, max_size=5
    ),
    json_values,
)
checkpoint_objects = st.fixed_dictionaries(
    {
        "CheckpointToken": weighted((4, st.just(Live("token"))), (1, st.just(Live("stale_token"))), (1, json_values)),
        "Updates": st.one_of(st.lists(random_updates, max_size=5), json_values),
    },
    optional={
        "ClientToken": st.sampled_from(["ct-1", "\x00", "a b", "é", "x\n", "x" * 65]) | junk | json_values,
        "Extra": json_values,
    },
)
checkpoint_bodies = weighted((3, checkpoint_objects), (1, bodies.filter(lambda b: b is not None)))


# Well-formed batches whose free text (payloads, errors, names, tenant ids) is hostile:
# these pass validation and reach the store. Each operation gets a fresh id when sent.
# Type → (SubType, options of its START, the ends a client may send).
KINDS = {
    "STEP": ("Step", {}, [None, "SUCCEED", "FAIL", "RETRY"]),
    "CONTEXT": ("RunInChildContext", {"ContextOptions": {"ReplayChildren": True}}, [None, "SUCCEED", "FAIL"]),
    "WAIT": ("Wait", {"WaitOptions": {"WaitSeconds": 60}}, [None]),
    "CALLBACK": ("Callback", {"CallbackOptions": {"TimeoutSeconds": 60, "HeartbeatTimeoutSeconds": 30}}, [None]),
    "CHAINED_INVOKE": ("ChainedInvoke", {"ChainedInvokeOptions": {"FunctionName": "add-one"}}, [None]),
}


@st.composite
def well_formed_ops(draw: st.DrawFn) -> list[dict[str, Any]]:
    op_type = draw(st.sampled_from(sorted(KINDS)))
    sub_type, start_options, ends = KINDS[op_type]
    start = {
        "Type": op_type,
        "Action": "START",
        "SubType": sub_type,
        "Name": draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=256)),
        **start_options,
    }
    if op_type == "CHAINED_INVOKE":
        start["Payload"] = draw(texts)
        if draw(st.booleans()):
            start["ChainedInvokeOptions"] = {**start["ChainedInvokeOptions"], "TenantId": draw(texts)}
    finish = draw(st.sampled_from(ends))
    if finish is None:
        return [start]
    end: dict[str, Any] = {"Type": op_type, "Action": finish}
    end.update({"Payload": draw(texts)} if finish == "SUCCEED" else {"Error": draw(error_texts)})
    if finish == "RETRY":
        end["StepOptions"] = {"NextAttemptDelaySeconds": 1}
    return [start, end]


def _step(op_id: str) -> dict[str, Any]:
    return {"Id": op_id, "Type": "STEP", "Action": "START", "SubType": "Step", "Name": "fuzz step"}


not_str = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
not_str_or_none = not_str.filter(lambda v: v is not None)
bad_ids = st.one_of(
    st.sampled_from(["", "a" * 65, "bad id", "s1\n", "s1\r", "é", "a.b", "a:b", "a/b", "\x00"]), not_str
)
bad_names = st.one_of(st.sampled_from(["", "x" * 257, "tab\there", "é", "line\n", "\x00", "\x7f"]), not_str_or_none)
bad_sub_types = st.one_of(st.sampled_from(["", "x" * 33, "Sub Type", "Step\n", "Step!"]), not_str_or_none)
bad_objects = st.one_of(
    st.booleans(), st.integers(), st.floats(), st.text(max_size=5), st.lists(st.integers(), max_size=2)
)


def bad_seconds(lo: int, hi: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([lo - 1, hi + 1, 1.0, True, "1"]),
        st.integers(max_value=lo - 1),
        st.integers(min_value=hi + 1),
        st.floats(),
        st.text(max_size=5),
        st.lists(st.integers(), max_size=1),
    )


POISONS: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("Id", bad_ids),
    ("Type", st.one_of(st.sampled_from(["step", "", "STEP ", "STEP\n", "TIMER"]), not_str)),
    ("Action", st.one_of(st.sampled_from(["start", "", "START\n", "JUMP"]), not_str)),
    ("ParentId", bad_ids.filter(lambda v: v is not None)),
    ("Name", bad_names),
    ("SubType", bad_sub_types),
    ("Payload", not_str_or_none),
    ("Error", bad_objects),
    ("Error", st.fixed_dictionaries({"ErrorMessage": not_str_or_none})),
    (
        "Error",
        st.fixed_dictionaries({"StackTrace": st.one_of(st.text(max_size=3), st.lists(not_str_or_none, min_size=1))}),
    ),
    (
        "Error",
        st.dictionaries(
            st.text(min_size=1, max_size=8).filter(
                lambda k: k not in ("ErrorMessage", "ErrorType", "ErrorData", "StackTrace")
            ),
            st.text(),
            min_size=1,
        ),
    ),
    ("StepOptions", bad_objects),
    ("StepOptions", st.fixed_dictionaries({"NextAttemptDelaySeconds": bad_seconds(1, 31_622_400)})),
    ("WaitOptions", st.fixed_dictionaries({"WaitSeconds": bad_seconds(1, 31_622_400)})),
    ("CallbackOptions", st.fixed_dictionaries({"TimeoutSeconds": bad_seconds(0, 99_999_999)})),
    ("CallbackOptions", st.fixed_dictionaries({"HeartbeatTimeoutSeconds": bad_seconds(0, 99_999_999)})),
    (
        "ContextOptions",
        st.fixed_dictionaries(
            {
                "ReplayChildren": st.one_of(
                    st.integers(), st.floats(), st.text(max_size=4), st.lists(st.booleans(), max_size=1)
                )
            }
        ),
    ),
    ("ChainedInvokeOptions", bad_objects),
    (
        "ChainedInvokeOptions",
        st.fixed_dictionaries({"FunctionName": st.one_of(not_str, st.just(""), st.just("f" * 171))}),
    ),
    (
        "ChainedInvokeOptions",
        st.fixed_dictionaries(
            {
                "FunctionName": st.just("add-one"),
                "TenantId": st.one_of(not_str_or_none, st.just(""), st.just("t" * 257)),
            }
        ),
    ),
]
poisoned_updates = st.sampled_from(range(len(POISONS))).flatmap(
    lambda i: POISONS[i][1].map(lambda value: {**_step("poisoned"), POISONS[i][0]: value})
)
EXECUTION = ("/2025-12-01/durable-executions/", Label(Live("arn"), ""))


# --- the fuzz --------------------------------------------------------------------------------------


def _content_type(value: str | None) -> dict[str, str]:
    return {"Content-Type": value} if value is not None else {}


@FUZZ
@given(
    line=request_lines,
    query=query_params,
    safe=st.sampled_from(SAFE_SETS),
    body=bodies,
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_any_request_to_any_route_gets_2xx_or_an_aws_4xx(
    world: World, line: tuple[str, Any], query: Any, safe: str, body: Any, content_type: str | None
) -> None:
    method, path = line
    world.send(method, (*path, *query_string(query, safe)), body, _content_type(content_type))


@FUZZ
@given(
    arn=st.sampled_from(["arn", "stopped_arn"]),
    route=st.sampled_from(["", "/history", "/state", "fn"]),
    function=st.sampled_from(["add-one", "approval"]),
    query=one_hostile_param,
    safe=st.sampled_from(SAFE_SETS),
)
def test_reads_with_hostile_query_parameters(
    world: World, arn: str, route: str, function: str, query: Any, safe: str
) -> None:
    path = (
        (f"/2025-12-01/functions/{function}/durable-executions",)
        if route == "fn"
        else ("/2025-12-01/durable-executions/", Label(Live(arn), ""), route)
    )
    world.send("GET", (*path, *query_string(query, safe)))


@FUZZ
@given(body=checkpoint_bodies)
def test_checkpoints_of_any_shape(world: World, body: Any) -> None:
    world.send("POST", (*EXECUTION, "/checkpoint"), body, JSON_HEADERS)


@FUZZ
@given(ops=st.lists(well_formed_ops(), min_size=1, max_size=3), client_token=st.none() | st.just("ct-1"))
def test_well_formed_checkpoints_with_hostile_text(
    world: World, ops: list[list[dict[str, Any]]], client_token: str | None
) -> None:
    updates = []
    for batch in ops:
        op_id = f"op-{world.fresh()}"
        updates += [{"Id": op_id, **u} for u in batch]
    body: dict[str, Any] = {"CheckpointToken": Live("token"), "Updates": updates}
    if client_token is not None:
        body["ClientToken"] = client_token
    world.send("POST", (*EXECUTION, "/checkpoint"), body, JSON_HEADERS)


@FUZZ
@given(how=st.sampled_from(["stop", "SUCCEED", "FAIL"]), payload=texts, error=error_texts)
def test_closing_the_execution_with_hostile_text(world: World, how: str, payload: str, error: dict[str, Any]) -> None:
    if how == "stop":
        world.send("POST", (*EXECUTION, "/stop"), error, JSON_HEADERS)
        return
    close = {
        "Id": EXECUTION_ID,
        "Type": "EXECUTION",
        "Action": how,
        **({"Payload": payload} if how == "SUCCEED" else {"Error": error}),
    }
    world.send(
        "POST", (*EXECUTION, "/checkpoint"), {"CheckpointToken": Live("token"), "Updates": [close]}, JSON_HEADERS
    )


@FUZZ
@given(
    good=st.lists(st.sampled_from(["s1", "s2", "s3"]).map(_step), max_size=3, unique_by=lambda u: u["Id"]),
    bad=poisoned_updates,
    at=st.integers(0, 3),
)
def test_a_checkpoint_with_one_bad_field_is_refused(
    world: World, good: list[dict[str, Any]], bad: dict[str, Any], at: int
) -> None:
    at = min(at, len(good))
    body = {"CheckpointToken": Live("token"), "Updates": [*good[:at], bad, *good[at:]]}
    status, headers, answer = world.send("POST", (*EXECUTION, "/checkpoint"), body, JSON_HEADERS)
    assert (status, headers.get("x-amzn-errortype")) == (400, "InvalidParameterValueException"), (bad, answer)
    assert f"Updates[{at}]" in answer["message"], (bad, answer)


@FUZZ
@given(
    action=st.sampled_from(["stop", "pause", "resume"]),
    arn=weighted(
        (3, st.builds(Label, st.sampled_from([Live("arn"), Live("stopped_arn")]), st.sampled_from(["", "/"]))),
        (1, labelled(arns)),
    ),
    body=weighted(
        (
            2,
            st.fixed_dictionaries(
                {},
                optional={
                    "Reason": st.sampled_from(["\x00", "r" * 1025, ""]) | junk | json_values,
                    "ExecutionTimeoutPaused": st.booleans() | json_values,
                    "ClientToken": st.sampled_from(["\x00", "ok", "a b", "x" * 65, "x\n"]) | junk | json_values,
                },
            ),
        ),
        (2, error_objects),
        (1, bodies),
    ),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_stop_pause_resume_with_any_body(
    world: World, action: str, arn: Label, body: Any, content_type: str | None
) -> None:
    world.send("POST", ("/2025-12-01/durable-executions/", arn, "/" + action), body, _content_type(content_type))


@FUZZ
@given(
    callback=labelled(callbacks),
    action=weighted((4, st.sampled_from(["succeed", "fail", "heartbeat"])), (1, labelled(junk))),
    method=weighted((4, st.just("POST")), (1, st.sampled_from(["GET", "PUT", "DELETE"]))),
    body=weighted(
        (1, st.sampled_from([b"\x00", b"a\x00b", b"\xff", "é".encode(), b"x" * (MIB + 1)])),
        (1, texts),
        (1, error_objects),
        (1, bodies),
    ),
    content_type=st.sampled_from(CONTENT_TYPES),
)
def test_callbacks_with_any_id_and_body(
    world: World, callback: Label, action: Any, method: str, body: Any, content_type: str | None
) -> None:
    world.send(
        method, ("/2025-12-01/durable-execution-callbacks/", callback, "/", action), body, _content_type(content_type)
    )


header_text = st.one_of(
    st.sampled_from(["", " ", "a" * 65, "é", "fuzz-dup", "fuzz-stopped", "ok_name-1", "\x00"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=70),
)


@FUZZ
@given(
    function=labelled(functions),
    query=query_params,
    headers=st.fixed_dictionaries(
        {},
        optional={
            "X-Amz-Invocation-Type": st.sampled_from(["RequestResponse", "Event", "DryRun", "event", ""]) | header_text,
            "X-Amz-Durable-Execution-Name": header_text,
            "X-Amz-Tenant-Id": header_text,
            "X-Amz-Client-Context": header_text,
            "X-Amz-Log-Type": st.sampled_from(["Tail", "None"]) | header_text,
            "Content-Type": st.sampled_from([c for c in CONTENT_TYPES if c is not None]),
        },
    ),
    body=st.one_of(st.sampled_from([b'"\\u0000"', b'{"a": 1}', b"x" * (MIB + 1)]), bodies),
)
def test_invoke_with_any_function_headers_and_payload(
    world: World, function: Label, query: Any, headers: dict[str, str], body: Any
) -> None:
    world.send("POST", ("/2015-03-31/functions/", function, "/invocations", *query_string(query, "")), body, headers)
