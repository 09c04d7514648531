"""Copy SQLite's write-ahead log back into the database file off the commit path.

By default the commit that fills the WAL past 1,000 pages checkpoints it
itself, which made one submission in ~65 wait 10–15 ms. Here a thread of its
own runs a PASSIVE checkpoint (it never blocks readers or writers) shortly
after writes happen; the commit-time checkpoint stays as a safety valve at
AUTOCHECKPOINT_PAGES, should this thread not keep up.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

AUTOCHECKPOINT_PAGES = 20_000  # ~80 MB of WAL: reached only if the thread falls behind


class WalCheckpointer:
    def __init__(self, path: str, *, delay: float = 0.25) -> None:
        self.path = path
        self.delay = delay
        self._wrote = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def wrote(self) -> None:
        """A write transaction committed: checkpoint within ``delay`` seconds."""
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(target=self._run, name="prospectpro-wal-checkpoint", daemon=True)
                    self._thread.start()
        self._wrote.set()

    def stop(self, timeout: float = 5) -> None:
        self._stopping.set()
        self._wrote.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._wrote.wait()
                if self._stopping.wait(self.delay):  # let a burst of commits gather first
                    return
                self._wrote.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # e.g. busy: the next write tries again
                    log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
        finally:
            conn.close()
