"""The status-change feed as Server-Sent Events, with one reader of the log for all streams.

Every open stream used to query the database every 100 ms. Now one poller per app reads
new status changes once per interval (``DURASCOPE_FEED_POLL_SECONDS`` in the app config,
0.1 s by default) into a window of recent changes, and the streams wait on that window
and filter it in memory: the database sees one query per interval however many streams
are open. A stream that resumes from before the window (``Last-Event-ID``, ``?after=``)
reads its backlog from the database page by page, then joins the window. The poller runs
while at least one stream is open.

Streams are capped: ``DURASCOPE_MAX_STREAMS`` in total (503 past it) and
``DURASCOPE_MAX_STREAMS_PER_CLIENT`` per client address (429 past it). A stream whose
client went away is noticed at its next write, at the latest its 15-second keep-alive.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, current_app, request

from recorder.api import Durascope
from recorder.errors import ServiceError, TooManyRequestsException
from recorder.followers.status import Filter, StatusChange, head_position, read_filtered, read_status_changes
from recorder.store.db import Database
from viewer.lambda_api import error_response

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
WINDOW = 5000  # recent changes held in memory
PAGE = 200  # changes read at once (the poller, a stream catching up)


class ServiceUnavailableException(ServiceError):
    code = "ServiceUnavailableException"
    status = 503


class StatusWindow:
    """The changes after ``floor`` up to ``head``, kept fresh by one poller thread."""

    def __init__(self, db: Database, poll_seconds: float) -> None:
        self._db = db
        self._poll = poll_seconds
        self._cond = threading.Condition()
        self._changes: list[StatusChange] = []
        self._floor = 0  # every change with a position above this one is in _changes
        self._head = 0  # the log position read up to
        self._readers = 0
        self._poller: threading.Thread | None = None

    def attach(self) -> int:
        """Start following (the poller runs while anyone does); returns the head."""
        with self._cond:
            self._readers += 1
            if self._poller is None:
                # Nobody followed while the poller was off: start the window at the head.
                with self._db.read() as s:
                    self._head = self._floor = head_position(s)
                self._changes.clear()
                self._poller = threading.Thread(target=self._run, name="durascope-feed-poller", daemon=True)
                self._poller.start()
            return self._head

    def detach(self) -> None:
        with self._cond:
            self._readers -= 1

    def wait_after(self, cursor: int, timeout: float) -> tuple[list[StatusChange], int] | None:
        """The changes after ``cursor``, waiting up to ``timeout`` seconds for one, with the
        position now read up to; None when ``cursor`` is below the window."""
        with self._cond:
            if cursor < self._floor:
                return None
            if not self._changes or self._changes[-1].position <= cursor:
                self._cond.wait(timeout)
                if cursor < self._floor:
                    return None
            start = bisect.bisect_right(self._changes, cursor, key=lambda c: c.position)
            return self._changes[start:], max(cursor, self._head)

    def _run(self) -> None:
        failing = False
        while True:
            with self._cond:
                if self._readers <= 0:
                    self._poller = None
                    return
                head = self._head
            try:
                with self._db.read() as s:
                    changes, head = read_status_changes(s, head, PAGE)
            except Exception:
                log.log(
                    logging.DEBUG if failing else logging.WARNING,
                    "the status-change feed could not read the log",
                    exc_info=True,
                )
                failing = True
                time.sleep(max(self._poll, 1.0))
                continue
            failing = False
            with self._cond:
                self._changes.extend(changes)
                if len(self._changes) > 2 * WINDOW:  # trimmed in steps: the list is bisected
                    self._floor = self._changes[-WINDOW - 1].position
                    del self._changes[:-WINDOW]
                self._head = head
                if changes:
                    self._cond.notify_all()
            if len(changes) < PAGE:
                time.sleep(self._poll)


class StreamSlots:
    """Open streams, in total and per client address."""

    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> None:
        with self._lock:
            if self._open.get(client, 0) >= self.per_client:
                raise TooManyRequestsException(
                    f"At most {self.per_client} feed streams per client (DURASCOPE_MAX_STREAMS_PER_CLIENT): "
                    "close one first"
                )
            if sum(self._open.values()) >= self.total:
                raise ServiceUnavailableException(
                    f"At most {self.total} feed streams are open at once (DURASCOPE_MAX_STREAMS): retry later"
                )
            self._open[client] = self._open.get(client, 0) + 1

    def give_back(self, client: str) -> None:
        with self._lock:
            left = self._open.get(client, 0) - 1
            if left > 0:
                self._open[client] = left
            else:
                self._open.pop(client, None)


class _Feed:
    """Per app: the window and the slots."""

    def __init__(self, window: StatusWindow, slots: StreamSlots) -> None:
        self.window = window
        self.slots = slots


_create_lock = threading.Lock()


def _feed(ds: Durascope) -> _Feed:
    with _create_lock:
        feed = current_app.extensions.get("durascope_feed")
        if feed is None:
            poll = float(current_app.config.get("DURASCOPE_FEED_POLL_SECONDS", 0.1))
            feed = current_app.extensions["durascope_feed"] = _Feed(
                StatusWindow(ds.db, poll), StreamSlots(ds.settings.max_streams, ds.settings.max_streams_per_client)
            )
        return feed


def _sse(event_id: int, data: dict[str, Any]) -> str:
    return f"id: {event_id}\nevent: status-change\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _Stream:
    """The response body: holds a slot and the window until closed (WSGI calls ``close``
    whether or not the body was ever iterated)."""

    def __init__(
        self,
        feed: _Feed,
        client: str,
        ds: Durascope,
        after: int | None,
        limit: int | None,
        wait: int | None,
        flt: Filter,
    ) -> None:
        self._feed, self._client = feed, client
        self._ds, self._after, self._limit, self._wait, self._flt = ds, after, limit, wait, flt
        self._head = feed.window.attach()
        self._closed = False

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._events()
        finally:
            self.close()  # a stream that ended (limit, wait) gives its slot back at once

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._feed.window.detach()
            self._feed.slots.give_back(self._client)

    def _events(self) -> Iterator[str]:
        window, settings, flt = self._feed.window, self._ds.settings, self._flt
        cursor = self._head if self._after is None else self._after
        sent = 0
        idle_since = last_out = time.monotonic()
        yield "retry: 2000\n\n"
        while True:
            now = time.monotonic()
            timeout = KEEPALIVE_SECONDS - (now - last_out)
            if self._wait is not None:
                timeout = min(timeout, self._wait - (now - idle_since))
            got = window.wait_after(cursor, max(timeout, 0.0))
            if got is None:  # behind the window: catch up from the database
                with self._ds.db.read() as s:
                    changes, cursor = read_filtered(s, cursor, PAGE, flt, settings)
            else:
                batch, cursor = got
                changes = [c for c in batch if flt.matches(c, settings)]
            for c in changes:
                yield _sse(c.position, c.to_event(settings))
                sent += 1
                if self._limit is not None and sent >= self._limit:
                    return
            now = time.monotonic()
            if changes:
                idle_since = last_out = now
                continue
            if self._wait is not None and now - idle_since >= self._wait:
                return
            if now - last_out >= KEEPALIVE_SECONDS:
                last_out = now
                yield ": keepalive\n\n"


def status_stream(ds: Durascope, after: int | None, limit: int | None, wait: int | None, flt: Filter) -> Response:
    """``/api/v1/feed``: changes after ``after`` (None: from now on) matching ``flt``; ends
    after ``limit`` events or ``wait`` idle seconds when given."""
    feed = _feed(ds)
    client = request.remote_addr or "?"
    try:
        feed.slots.take(client)
    except ServiceError as exc:
        return error_response(exc)
    try:
        body = _Stream(feed, client, ds, after, limit, wait, flt)
    except BaseException:
        feed.slots.give_back(client)
        raise
    return Response(
        body, mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
