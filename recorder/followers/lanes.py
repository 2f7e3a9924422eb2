"""The sending threads of the dispatcher, in two lanes, so one slow subscription cannot stall the others.

* The **fast lane**: ``concurrency`` threads, in claim order, for every subscription that
  answers promptly.
* The **slow lane**: up to ``concurrency`` more threads for subscriptions whose last attempt
  took ``slow_seconds`` or more. Each slow subscription has at most ``per_subscription``
  sends running and twice that claimed; the lane serves them in turn.

A send that is still running after ``slow_seconds`` does not wait to finish to count:
``watch`` (called by the dispatcher's loop every few milliseconds) marks its subscription
slow, and the thread that waits on it leaves the fast lane, which starts a new thread in
its place (up to ``4 * concurrency`` such sends at once). So a receiver that holds
connections open ties up fast threads for ``slow_seconds`` once, and the attempt's
deadline bounds how long the threads it holds wait. A subscription leaves the slow lane
when one of its attempts is quick again.

Order per (subscription, execution) is not this module's concern: the dispatcher never
hands over two deliveries of one execution at a time.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from recorder.followers.outbox import Due, Outcome

# Sends moved out of the fast lane while they run, at most, per sending thread of the lane.
_HANDED_OVER_PER_THREAD = 4

Results = queue.SimpleQueue[Any]
_Item = tuple[Due, Results]


class Lanes:
    def __init__(self, send: Callable[[Due], Outcome], concurrency: int, slow_seconds: float) -> None:
        self._send = send
        self._n = max(1, concurrency)
        self._slow_after = slow_seconds
        self.per_subscription = max(1, self._n // 4)
        lock = threading.Lock()
        self._fast_cv = threading.Condition(lock)
        self._slow_cv = threading.Condition(lock)
        self._lock = lock
        self._fast: deque[_Item] = deque()
        self._slow_q: dict[str, deque[_Item]] = {}  # per slow subscription, in claim order
        self._turn: deque[str] = deque()  # slow subscriptions with queued items, served in turn
        self._slow: set[str] = set()
        self._slow_sending: Counter[str] = Counter()
        # thread id -> [subscription, start, lane]; lane "handed over": a fast thread whose send
        # ran too long, replaced in the fast lane
        self._running: dict[int, list[Any]] = {}
        self._fast_threads = 0
        self._slow_threads = 0
        self._handed_over = 0
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # --- the dispatcher's side ---------------------------------------------------------------------

    def put(self, row: Due, results: Results) -> bool:
        """Queue ``row``; its outcome goes to ``results``. False (nothing queued) when its
        subscription is slow and already has its share claimed: the row stays due."""
        with self._lock:
            sub = row.subscription_id
            if sub in self._slow:
                if self._claimed_slow(sub) >= 2 * self.per_subscription:
                    return False
                self._queue_slow((row, results))
            else:
                self._fast.append((row, results))
                if self._fast_threads < self._n:
                    self._start(fast=True)
                self._fast_cv.notify()
        return True

    def saturated(self) -> set[str]:
        """Slow subscriptions that have their share claimed: the claim skips them."""
        with self._lock:
            return {s for s in self._slow if self._claimed_slow(s) >= 2 * self.per_subscription}

    def watch(self) -> None:
        """Move sends running for ``slow_seconds`` or more out of the fast lane."""
        now = time.monotonic()
        with self._lock:
            for entry in self._running.values():
                sub, started, lane = entry
                if lane != "fast" or now - started < self._slow_after:
                    continue
                self._slow.add(sub)
                if self._handed_over < _HANDED_OVER_PER_THREAD * self._n:
                    entry[2] = "handed over"
                    self._fast_threads -= 1
                    self._handed_over += 1
                    self._slow_sending[sub] += 1
                    self._start(fast=True)

    def stop(self, timeout: float = 30.0) -> None:
        """Send what is queued, then end every thread."""
        with self._lock:
            self._stopping = True
            self._fast_cv.notify_all()
            self._slow_cv.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        while threads and time.monotonic() < deadline:
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
            with self._lock:  # a stopping thread may have started another (a lane change)
                threads = [t for t in self._threads if t.is_alive()]

    # --- the threads ----------------------------------------------------------------------------

    def _claimed_slow(self, sub: str) -> int:
        return len(self._slow_q.get(sub, ())) + self._slow_sending[sub]

    def _queue_slow(self, item: _Item) -> None:
        sub = item[0].subscription_id
        q = self._slow_q.get(sub)
        if q is None:
            q = self._slow_q[sub] = deque()
            self._turn.append(sub)
        q.append(item)
        if self._slow_threads < self._n:
            self._start(fast=False)
        self._slow_cv.notify_all()

    def _start(self, fast: bool) -> None:
        if fast:
            self._fast_threads += 1
        else:
            self._slow_threads += 1
        t = threading.Thread(
            target=self._work, args=(fast,), daemon=True, name=f"durascope-webhook-{'fast' if fast else 'slow'}"
        )
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _take_fast(self) -> _Item | None:
        while True:
            while self._fast:
                item = self._fast.popleft()
                if item[0].subscription_id in self._slow:  # became slow while it waited
                    self._queue_slow(item)
                    continue
                return item
            if self._stopping:
                return None
            self._fast_cv.wait()

    def _take_slow(self) -> _Item | None:
        while True:
            for _ in range(len(self._turn)):
                sub = self._turn[0]
                self._turn.rotate(-1)
                q = self._slow_q[sub]
                if self._slow_sending[sub] < self.per_subscription:
                    item = q.popleft()
                    if not q:
                        del self._slow_q[sub]
                        self._turn.remove(sub)
                    self._slow_sending[sub] += 1
                    return item
            if self._stopping and not self._slow_q:
                return None
            self._slow_cv.wait()

    def _work(self, fast: bool) -> None:
        me = threading.get_ident()
        while True:
            with self._lock:
                item = self._take_fast() if fast else self._take_slow()
                if item is None:
                    if fast:
                        self._fast_threads -= 1
                    else:
                        self._slow_threads -= 1
                    return
                row, results = item
                self._running[me] = [row.subscription_id, time.monotonic(), "fast" if fast else "slow"]
            outcome = self._send(row)
            with self._lock:
                sub, started, lane = self._running.pop(me)
                if lane != "fast":
                    self._slow_sending[sub] -= 1
                    if self._slow_sending[sub] <= 0:
                        del self._slow_sending[sub]
                self._judge(sub, time.monotonic() - started)
                leave = False
                if lane == "handed over":  # joins the slow lane if it has room
                    self._handed_over -= 1
                    fast = False
                    leave = self._slow_threads >= self._n
                    if not leave:
                        self._slow_threads += 1
                self._slow_cv.notify_all()
            results.put(outcome)
            if leave:
                return

    def _judge(self, sub: str, took: float) -> None:
        """A quick attempt brings a slow subscription back to the fast lane, with what it has queued."""
        if took >= self._slow_after:
            self._slow.add(sub)
        elif sub in self._slow:
            self._slow.discard(sub)
            back = self._slow_q.pop(sub, None)
            if back:
                self._turn.remove(sub)
                self._fast.extend(back)
                if self._fast_threads < self._n:
                    self._start(fast=True)
                self._fast_cv.notify(len(back))
