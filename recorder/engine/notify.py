"""Post-commit notification: what a committed transaction owes the engines.

Listeners in this process hear of every commit; on PostgreSQL the other engines on the
database are woken by a NOTIFY for what their sweep would find late.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from recorder.engine.boundary import SWEEP_SECONDS, CloseListener, Listener, now_ms
from recorder.store.db import Database
from recorder.store.sql import Raw

# The channel every engine on a PostgreSQL database LISTENs on.
CHANNEL = "durascope_work"


@dataclass(frozen=True, kw_only=True)
class WorkNotice:
    """The payload of a NOTIFY on ``CHANNEL``: which engine sent it (its own are ignored),
    the executions that want an invocation nobody has claimed (at most 100), and the
    earliest timer due before the receivers' next sweep."""

    owner: str
    invoke: tuple[str, ...] = ()
    due_ms: int | None = None

    def to_json(self) -> str:
        return json.dumps({"owner": self.owner, "invoke": list(self.invoke), "due_ms": self.due_ms})

    @classmethod
    def from_json(cls, payload: str) -> WorkNotice:
        data = json.loads(payload)
        due = data.get("due_ms")
        return cls(
            owner=str(data.get("owner") or ""),
            invoke=tuple(str(i) for i in data.get("invoke") or ()),
            due_ms=int(due) if due else None,
        )


@dataclass
class Owed:
    """What one transaction owes the engine once it has committed."""

    invoke: set[str] = field(default_factory=set)
    timer_dues: list[int] = field(default_factory=list)
    # ARNs of the executions this transaction closed.
    closed: list[str] = field(default_factory=list)


class Notifier:
    def __init__(self, db: Database, owner: str) -> None:
        self.db = db
        self.owner = owner
        self.listeners: list[Listener] = []
        self.close_listeners: list[CloseListener] = []

    def emit(self, owed: Owed) -> None:
        if owed.closed:
            for close_listener in self.close_listeners:
                close_listener(owed.closed)
        if owed.invoke or owed.timer_dues:
            for listener in self.listeners:
                listener(set(owed.invoke), list(owed.timer_dues))
            if self.db.dialect == "postgresql":
                self._notify(owed)

    def _notify(self, owed: Owed) -> None:
        """Wake the other engines on this database (LISTEN durascope_work) for what their
        sweep would find late: invocations nobody claimed, and timers due before their next
        sweep. Every start and every close sets a timer a day or more away (the execution
        timeout, the retention purge), which each engine's sweep reads anyway; telling them
        cost a transaction of three round trips per start and per close. The notification
        is one autocommit statement after the commit, not part of the transaction: a
        NOTIFY that fails (a full queue fails at COMMIT) must not undo the work."""
        soon = [d for d in owed.timer_dues if d < now_ms() + SWEEP_SECONDS * 1000]
        if not owed.invoke and not soon:
            return
        notice = WorkNotice(
            owner=self.owner, invoke=tuple(sorted(owed.invoke)[:100]), due_ms=min(soon) if soon else None
        )
        try:
            with self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                Raw(conn).one("SELECT pg_notify(:c, :p)", {"c": CHANNEL, "p": notice.to_json()})
        except Exception:  # noqa: BLE001 - a lost wake-up only delays work until the next sweep
            pass
