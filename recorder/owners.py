"""Who holds a lease, and whether that process is known to be dead.

A lease owner is written ``host:pid:nonce:scope.start``. ``scope`` names the kernel boot and
the PID namespace the process runs in (on Linux, a hash of ``/proc/sys/kernel/random/boot_id``
and ``/proc/self/ns/pid``) and ``start`` is the process's start time in clock ticks. A
process that finds a lease whose owner has its own ``scope``, and whose pid is gone, is a
zombie or belongs to a process that started at another time, knows the owner is dead: a
``serve`` restarted on the same host takes its work back at once instead of waiting for
the lease to expire. Anything else (another host, another container, no ``/proc``) is
not known dead, and its lease is waited out.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from functools import cache


@cache
def _scope() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return hashlib.sha256(f"{boot}/{namespace}".encode()).hexdigest()[:12]


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return fields[0], fields[19]


def owner_id() -> str:
    """This process as a lease owner (a new nonce each call: two holders in one process differ).
    At most 64 characters (the engine's lease column): the host name is cut to 20."""
    host = socket.gethostname()[:20]
    nonce = uuid.uuid4().hex[:8]
    scope = _scope()
    me = _stat(os.getpid()) if scope else None
    return f"{host}:{os.getpid()}:{nonce}" + (f":{scope}.{me[1]}" if scope and me else "")


def known_dead(owner: str | None) -> bool:
    """True only when ``owner`` ran in this host's PID namespace and is gone now."""
    parts = (owner or "").rsplit(":", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return False
    scope, _, start = parts[3].partition(".")
    if _scope() is None or scope != _scope():
        return False
    stat = _stat(int(parts[1]))
    return stat is None or stat[0] in ("Z", "X") or stat[1] != start
