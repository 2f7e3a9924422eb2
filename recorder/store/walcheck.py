"""SQLite WAL checkpoints on a thread of their own, off the commit path.

By default SQLite runs a checkpoint inside the COMMIT that pushes the WAL past 1,000
pages: that one commit copies ~4 MB back into the database file and fsyncs it. In W1
(bench/) that was a 17-22 ms commit about every hundred checkpoints on the 2026-12-01
night machine, on the invocation's critical path; with this thread a checkpoint's p99
went to 1.6-3.4 ms (the medians of W1 and W4 did not move beyond that machine's drift,
bench/README.md). The writer
connection turns automatic checkpoints off (``PRAGMA wal_autocheckpoint=0``) and pokes
this thread every ``commits_per_checkpoint`` commits instead; the thread runs the same
PASSIVE checkpoint SQLite would have run, on its own connection. sqlite3 releases the
GIL while it copies and syncs, so the work lands on the other core.

A checkpoint run beside a busy writer never finishes: frames committed while it copies
are left for the next one, and SQLite restarts the WAL from its start only when every
frame has been copied. Under a steady stream of commits the WAL would grow without
bound. So each round copies in two passes: the bulk without the process's write mutex,
then the few frames committed meanwhile while holding it (a fraction of a millisecond
and one fsync every ``commits_per_checkpoint`` commits, instead of the whole copy), and
the next write transaction starts the WAL over. PASSIVE never waits for readers, exactly
like the automatic checkpoint, so a reader holding an old snapshot can stall the
restart here as it would there.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

COMMITS_PER_CHECKPOINT = 100  # ~1,000 WAL pages at the ~10 pages a checkpoint commit writes


class WalCheckpointer:
    def __init__(
        self, path: str, write_mutex: threading.Lock, commits_per_checkpoint: int = COMMITS_PER_CHECKPOINT
    ) -> None:
        self._path = path
        self._write_mutex = write_mutex
        self._every = commits_per_checkpoint
        self._commits = 0
        self._due = threading.Event()
        self._stopping = False
        self.checkpoints = 0  # completed checkpoints, for tests and diagnostics
        self._thread = threading.Thread(target=self._run, name="durascope-wal-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Called by the writer (under its mutex) after each commit."""
        self._commits += 1
        if self._commits >= self._every:
            self._commits = 0
            self._due.set()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._due.wait()
                self._due.clear()
                if self._stopping:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    with self._write_mutex:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error:
                    # The next poke retries; a failed checkpoint only leaves the WAL longer.
                    log.warning("WAL checkpoint failed", exc_info=True)
        finally:
            conn.close()

    def close(self) -> None:
        self._stopping = True
        self._due.set()
        self._thread.join(timeout=30)
