"""``durascope demo``: register the seed workflows, start a mixed batch, answer callbacks, serve.

Why it exists: a fresh clone should show something real in one command. The batch is built
so that every outcome appears (SUCCEEDED, FAILED, TIMED_OUT, STOPPED, and RUNNING executions
parked on a callback or a long wait), and a built-in *approver* thread plays the humans:
it approves, rejects or fails callbacks after a short delay, sends heartbeats while it
"reviews", stops one long wait, and deliberately leaves a few callbacks unanswered. The
approver runs in the same process as the engine and the server, on the same ``Durascope``,
because the in-process engine is what runs the handlers. The demo serves what ``serve``
serves (``viewer.server.serve``: the API, the viewer, the engine and the webhook
dispatcher) but keeps the in-process invoker (not ``serve``'s worker processes): it starts
in a second and needs nothing but the installed package.

The plan is deterministic in ``--seed`` (inputs come from each sample's
``sample_input(rng)``); execution names carry a short run id, so the demo can run again on
the same database.

``--no-serve`` runs the batch until it *settles* (every planned answer given, every
execution expected to end has ended, every execution expected to stay RUNNING is parked) and
exits: that is what tests and CI use.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from recorder.api import Durascope, ExecutionSummary
from recorder.config import Settings
from recorder.errors import ServiceError
from recorder.queries import TERMINAL
from samples import document_etl, failures, loan, orders, saga
from samples.catalog import CATALOG

Action = Literal["approve", "reject", "fail", "leave"]
PARKED_EVENTS = frozenset({"CallbackStarted", "WaitStarted"})


@dataclass(frozen=True)
class CallbackAnswer:
    """What the approver does with the n-th callback of an execution.

    ``approve``/``reject`` send SendDurableExecutionCallbackSuccess with ``payload`` (a
    rejection is a success call whose payload says no, as the samples expect);
    ``fail`` sends SendDurableExecutionCallbackFailure; ``leave`` never answers.
    ``heartbeats`` heartbeats are spread evenly over ``delay`` seconds before the answer.
    """

    action: Action
    payload: dict[str, Any] | None = None
    delay: float = 2.0
    heartbeats: int = 0


@dataclass(frozen=True)
class PlannedExecution:
    """One execution of the batch and what the demo expects of it."""

    function: str
    name: str
    payload: dict[str, Any]
    expect: str  # SUCCEEDED, FAILED, TIMED_OUT, STOPPED or RUNNING (parked)
    answers: tuple[CallbackAnswer, ...] = ()
    stop_after: float | None = None  # seconds after the start; the approver stops it


@dataclass(frozen=True)
class StartedExecution:
    plan: PlannedExecution
    arn: str
    started_at: float  # time.time(), the clock of the history's EventTimestamp


@dataclass(frozen=True)
class DemoBatch:
    run_id: str
    executions: tuple[StartedExecution, ...]

    def summary(self) -> str:
        """One line: what was started and what the approver will do."""
        answers = Counter(a.action for s in self.executions for a in s.plan.answers)
        functions = {s.plan.function for s in self.executions}
        stops = sum(1 for s in self.executions if s.plan.stop_after is not None)
        return (
            f"demo run {self.run_id}: {len(self.executions)} executions of {len(functions)} functions; approver "
            f"approves {answers['approve']}, rejects {answers['reject'] + answers['fail']}, leaves "
            f"{answers['leave']} callbacks waiting, stops {stops}"
        )


@dataclass(frozen=True)
class DemoOutcome:
    """How a ``--no-serve`` batch ended. ``unexpected`` lists executions whose status is not the
    planned one (``name: expected -> actual``): the samples are deterministic, so any entry
    means the engine (or a sample) misbehaved."""

    settled: bool
    seconds: float
    statuses: dict[str, int]
    unexpected: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.settled and not self.unexpected

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        state = "settled" if self.settled else "did NOT settle"
        extra = f"; unexpected: {', '.join(self.unexpected)}" if self.unexpected else ""
        return f"batch {state} in {self.seconds:.1f} s: {counts}{extra}"


# --- the plan ------------------------------------------------------------------------------


def _approve(payload: dict[str, Any], delay: float = 2.0, heartbeats: int = 0) -> CallbackAnswer:
    return CallbackAnswer("approve", payload, delay, heartbeats)


@dataclass(frozen=True)
class Scenario:
    """A kind of execution in the batch: which function, which input, what the humans do."""

    label: str
    function: str
    make_input: Callable[[random.Random], dict[str, Any]]
    expect: str
    answers: tuple[CallbackAnswer, ...] = ()
    stop_after: float | None = None


def _good_loan(rng: random.Random) -> dict[str, Any]:
    return {
        **loan.sample_input(rng),
        "credit_score": rng.randint(720, 820),
        "annual_income": 90000,
        "amount": 15000,
        "fraud_flag": False,
    }


def _leave() -> tuple[CallbackAnswer, ...]:
    return (CallbackAnswer("leave"),)


# The order interleaves outcomes, so a small --executions still shows all of them.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("order", "orders", lambda r: {**orders.sample_input(r), "fail_first_attempts": 1}, "SUCCEEDED"),
    Scenario("saga-rollback", "order-saga", lambda r: {**saga.sample_input(r), "fail_at": "ship-order"}, "FAILED"),
    Scenario(
        "order-approved",
        "orders-approval",
        orders.sample_input,
        "SUCCEEDED",
        (_approve({"approved": True, "approver": "maria"}),),
    ),
    Scenario("etl-waiting", "document-etl", document_etl.sample_input, "RUNNING", _leave()),
    Scenario(
        "loan-funded",
        "loan-origination",
        _good_loan,
        "SUCCEEDED",
        (_approve({"approved": True, "underwriter": "omar"}), _approve({"accepted": True}, 3.0)),
    ),
    Scenario("exhausted", "exhausted-retries", lambda r: {}, "FAILED"),
    # Heartbeats every 1.6 s keep a callback with a 5 s heartbeat timeout alive for 8 s.
    Scenario(
        "etl-heartbeat",
        "document-etl",
        lambda r: {**document_etl.sample_input(r), "heartbeat_timeout_seconds": 5},
        "SUCCEEDED",
        (_approve({"approved": True, "reviewer": "lee"}, delay=8.0, heartbeats=4),),
    ),
    Scenario(
        "order-rejected",
        "orders-approval",
        orders.sample_input,
        "FAILED",
        (CallbackAnswer("fail", {"ErrorType": "ApprovalDenied", "ErrorMessage": "over the spending limit"}),),
    ),
    Scenario("retry-ok", "retry-then-succeed", lambda r: {}, "SUCCEEDED"),
    Scenario(
        "loan-offer-open",
        "loan-origination",
        _good_loan,
        "RUNNING",
        (_approve({"approved": True, "underwriter": "omar"}), CallbackAnswer("leave")),
    ),
    Scenario("callback-timeout", "callback-timeout", lambda r: {"timeout_seconds": 2}, "FAILED"),
    Scenario("exec-timeout", "execution-timeout", lambda r: {"seconds": 60}, "TIMED_OUT"),
    Scenario("saga", "order-saga", lambda r: {**saga.sample_input(r), "fail_at": None}, "SUCCEEDED"),
    Scenario("map", "map-with-failures", failures.sample_input, "SUCCEEDED"),
    Scenario("stopped", "long-wait", lambda r: {"seconds": 3600}, "STOPPED", stop_after=3.0),
    Scenario(
        "etl-rejected",
        "document-etl",
        document_etl.sample_input,
        "SUCCEEDED",
        (CallbackAnswer("reject", {"approved": False, "reason": "totals do not match"}),),
    ),
    Scenario("order-invalid", "orders", lambda r: {**orders.sample_input(r), "items": []}, "FAILED"),
    Scenario("loan-fraud", "loan-origination", lambda r: {**loan.sample_input(r), "fraud_flag": True}, "SUCCEEDED"),
    Scenario("hello", "hello", lambda r: {"name": r.choice(["World", "Durascope", "Lambda"])}, "SUCCEEDED"),
    Scenario("order-waiting", "orders-approval", orders.sample_input, "RUNNING", _leave()),
    Scenario("saga-payment", "order-saga", lambda r: {**saga.sample_input(r), "fail_at": "charge-payment"}, "FAILED"),
    Scenario("sleeper", "long-wait", lambda r: {"seconds": 3600}, "RUNNING"),
)


def plan_batch(n: int, seed: int, run_id: str) -> list[PlannedExecution]:
    """N executions cycling through SCENARIOS, inputs drawn from a Random seeded with ``seed``."""
    rng = random.Random(seed)
    plan = []
    for i in range(n):
        sc = SCENARIOS[i % len(SCENARIOS)]
        plan.append(
            PlannedExecution(
                sc.function, f"{sc.label}-{i:03d}-{run_id}", sc.make_input(rng), sc.expect, sc.answers, sc.stop_after
            )
        )
    return plan


def register_samples(ds: Durascope) -> None:
    """Register (or update) every catalog function."""
    for sample in CATALOG:
        ds.register_function(sample.name, sample.handler, execution_timeout=sample.execution_timeout)


def start_batch(ds: Durascope, executions: int, seed: int) -> DemoBatch:
    run_id = uuid.uuid4().hex[:6]
    started = []
    for plan in plan_batch(executions, seed, run_id):
        arn = ds.start(plan.function, json.dumps(plan.payload), plan.name)
        started.append(StartedExecution(plan, arn, time.time()))
    return DemoBatch(run_id, tuple(started))


# --- the approver --------------------------------------------------------------------------


@dataclass
class _Progress:
    """The approver's mutable view of one execution (private to the approver thread)."""

    started: StartedExecution
    seen: dict[str, float] = field(default_factory=dict)  # callback id -> its CallbackStarted time (epoch s)
    order: list[str] = field(default_factory=list)  # callback ids in creation order
    answered: int = 0  # answers consumed (given, or "leave" once its callback exists)
    heartbeats: int = 0  # heartbeats sent for the callback currently being answered
    stopped: bool = False
    parked: bool = False
    status: str = "RUNNING"

    @property
    def idle(self) -> bool:
        """Nothing left to do: ended, or parked for good as planned (all answers given)."""
        if self.status in TERMINAL:
            return True
        plan = self.started.plan
        return (
            plan.expect == "RUNNING" and self.parked and self.answered >= len(plan.answers) and plan.stop_after is None
        )


class Approver(threading.Thread):
    """Plays the humans and operators of the batch, polling the store every ``interval`` seconds."""

    def __init__(
        self, ds: Durascope, batch: DemoBatch, interval: float = 0.25, log: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(name="durascope-demo-approver", daemon=True)
        self.ds = ds
        self.interval = interval
        self.log = log or (lambda _msg: None)
        self.progress = [_Progress(s) for s in batch.executions]
        self.halt = threading.Event()
        self._settled = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the demo must keep serving; record and go on
                self.errors.append(f"{type(exc).__name__}: {exc}")
            if all(p.idle for p in self.progress):
                self._settled.set()
            self.halt.wait(self.interval)

    def settled(self, timeout: float) -> bool:
        return self._settled.wait(timeout)

    def stop(self) -> None:
        self.halt.set()
        if self.is_alive():
            self.join(timeout=5)

    def tick(self) -> None:
        # Delays count from the CallbackStarted event, not from when this (possibly slow,
        # on a busy machine) poll noticed it: heartbeats must beat the heartbeat timeout.
        now = time.time()
        for p in self.progress:
            if p.status in TERMINAL:
                continue
            p.status = self.ds.describe(p.started.arn).status
            if p.status in TERMINAL:
                continue
            plan = p.started.plan
            if plan.stop_after is not None and not p.stopped and now - p.started.started_at >= plan.stop_after:
                self._call(
                    self.ds.stop,
                    p.started.arn,
                    {"ErrorType": "Demo.Stopped", "ErrorMessage": "stopped by the demo operator"},
                )
                p.stopped = True
                self.log(f"stopped {plan.name}")
                continue
            if p.parked and p.answered >= len(plan.answers):
                continue
            self._observe(p, now)
            self._answer(p, now)

    def _observe(self, p: _Progress, now: float) -> None:
        for event in self.ds.history(p.started.arn, include_data=False):
            if event["EventType"] in PARKED_EVENTS:
                p.parked = True
            if event["EventType"] == "CallbackStarted":
                cid = event["CallbackStartedDetails"]["CallbackId"]
                if cid not in p.seen:
                    p.seen[cid] = min(float(event["EventTimestamp"]), now)
                    p.order.append(cid)

    def _answer(self, p: _Progress, now: float) -> None:
        plan = p.started.plan
        while p.answered < len(plan.answers) and p.answered < len(p.order):
            answer = plan.answers[p.answered]
            cid = p.order[p.answered]
            if answer.action == "leave":
                p.answered += 1
                continue
            elapsed = now - p.seen[cid]
            if answer.heartbeats and p.heartbeats < answer.heartbeats:
                due = (p.heartbeats + 1) * answer.delay / (answer.heartbeats + 1)
                if elapsed >= due:
                    self._call(self.ds.callback_heartbeat, cid)
                    p.heartbeats += 1
            if elapsed < answer.delay:
                return
            if answer.action == "fail":
                self._call(self.ds.callback_failure, cid, answer.payload)
            else:
                self._call(self.ds.callback_success, cid, json.dumps(answer.payload or {}))
            self.log(f"{answer.action} callback {p.answered + 1} of {plan.name}")
            p.answered += 1
            p.heartbeats = 0

    def _call(self, fn: Callable[..., object], *args: Any) -> None:
        # The execution may have ended meanwhile (timed out, stopped): the service refuses
        # the call, which is a normal race for an approver, not a demo failure.
        try:
            fn(*args)
        except ServiceError as exc:
            self.log(f"approver call refused: {exc.code}: {exc.message}")

    def final(self) -> dict[str, ExecutionSummary]:
        """Execution name -> its summary, read fresh from the store."""
        return {p.started.plan.name: self.ds.describe(p.started.arn) for p in self.progress}


# --- entry points --------------------------------------------------------------------------


def run_batch(
    ds: Durascope, executions: int, seed: int, timeout: float = 180.0, echo: Callable[[str], None] = print
) -> DemoOutcome:
    """Register, start the batch and run the approver until the batch settles (``--no-serve``)."""
    register_samples(ds)
    t0 = time.monotonic()
    batch = start_batch(ds, executions, seed)
    echo(batch.summary())
    approver = Approver(ds, batch)
    approver.start()
    try:
        settled = approver.settled(timeout)
    finally:
        approver.stop()
    for error in approver.errors[:5]:
        echo(f"approver error: {error}")
    final = approver.final()
    expected = {s.plan.name: s.plan.expect for s in batch.executions}
    unexpected = tuple(
        f"{name}: {expected[name]} -> {d.status} ({(d.error or {}).get('ErrorMessage', '')})"
        for name, d in final.items()
        if d.status != expected[name]
    )
    return DemoOutcome(settled, time.monotonic() - t0, dict(Counter(d.status for d in final.values())), unexpected)


def serve_demo(
    settings: Settings, host: str, port: int, executions: int, seed: int, echo: Callable[[str], None] = print
) -> None:
    """Bind the server first (a busy port fails before anything starts), then serve what
    ``durascope serve`` serves (the API, the viewer, the engine and the webhook dispatcher)
    with the batch and its approver, until SIGINT/SIGTERM; they share one Durascope."""
    from viewer.server import build_server, safe_url, serve

    ds = Durascope(settings, run_engine=True)
    approver: Approver | None = None
    try:
        server, _ = build_server(settings, host, port, durascope=ds)
    except BaseException:
        ds.close()
        raise

    def start(url: str) -> None:
        nonlocal approver
        register_samples(ds)
        batch = start_batch(ds, executions, seed)
        approver = Approver(ds, batch)
        approver.start()
        echo(f"Durascope demo at {url} (viewer and Lambda API; engine running on {safe_url(settings.database_url)})")
        echo(batch.summary())
        echo(f"try: {aws_hint(url, settings.region)}")
        sys.stdout.flush()
        threading.Thread(target=_report_when_settled, args=(approver, echo), daemon=True).start()

    try:
        serve(server, ds, settings, host, ready=start)
    finally:
        if approver is not None:
            approver.stop()
            for error in approver.errors[:5]:
                echo(f"approver error: {error}")
        ds.close()


def aws_hint(url: str, region: str) -> str:
    """An AWS CLI command that works as printed, also on a machine with no AWS configuration
    (Durascope without access keys accepts any credentials)."""
    return (
        "AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo aws lambda list-durable-executions-by-function "
        f"--function-name orders --endpoint-url {url} --region {region}"
    )


def _report_when_settled(approver: Approver, echo: Callable[[str], None]) -> None:
    """One more line once the approver has nothing left to do, so the user knows the batch is done."""
    while not approver.halt.is_set():
        if approver.settled(1.0):
            counts = Counter(d.status for d in approver.final().values())
            echo("batch settled: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
            sys.stdout.flush()
            return
