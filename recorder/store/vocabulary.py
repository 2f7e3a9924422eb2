"""The store's vocabulary: the names of states, types and kinds, each defined once."""

from __future__ import annotations

from enum import StrEnum


class TimerKind(StrEnum):
    """``timers.kind``: what a due timer does."""

    WAIT = "wait"  # a WAIT op's scheduled end
    RETRY = "retry"  # a STEP's next attempt (PENDING -> READY)
    CALLBACK_TIMEOUT = "callback-timeout"
    CALLBACK_HEARTBEAT_TIMEOUT = "callback-heartbeat"
    EXECUTION_TIMEOUT = "execution-timeout"
    PURGE = "purge"  # retention of a closed execution


DAY_MS = 86_400_000
