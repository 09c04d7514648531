"""The database handle: one engine, read and write transactions, wake-ups.

SQLite (the embedded default) runs in WAL mode with the driver's own
transaction handling switched off, so that a write transaction starts with
``BEGIN IMMEDIATE``: the write lock is taken up front, which is what makes a
claim atomic across processes. Inside one process writers also queue on a
lock, because SQLite's busy handler sleeps in coarse steps and would turn
contention into latency spikes.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from prospectpro.store.checkpoint import AUTOCHECKPOINT_PAGES, WalCheckpointer

Listener = Callable[[str], None]
_CHANGED = "prospectpro.changed_jobs"


def mark_changed(conn: Connection, job_id: str) -> None:
    """Announce this job to in-process listeners after the transaction commits."""
    changed = conn.info.get(_CHANGED)
    if changed is not None:
        changed.append(job_id)


@dataclass
class Notifier:
    """In-process wake-ups: who wants to hear that a job changed."""

    _listeners: set[Listener] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.add(listener)
        return lambda: self.unsubscribe(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.discard(listener)

    def publish(self, job_id: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(job_id)


class _FileLock:
    """An exclusive flock on a file beside the database, held around each write transaction.

    Other processes (a second API process, a CLI worker) wait in the kernel
    and wake the moment it is released, instead of in SQLite's busy handler,
    which sleeps 1, 2, 5, 10… ms between tries and turns every collision
    into a latency spike. SQLite's own locking still guards the file
    against anything that does not take this lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0

    def _open(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child needs its own open file
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __enter__(self) -> None:
        fcntl.flock(self._open(), fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._open(), fcntl.LOCK_UN)


def _file_lock_for(database: str | None) -> _FileLock | None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _FileLock(path.with_name(path.name + ".lock"))


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self.notifier = Notifier()
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._file_lock = _file_lock_for(parsed.database) if self.is_sqlite else None
        self._checkpointer = WalCheckpointer(parsed.database) if self._file_lock is not None else None
        self.engine = self._create_engine(url, echo)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _create_engine(self, url: str, echo: bool) -> Engine:
        if not self.is_sqlite:
            return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=40,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if self._checkpointer is not None:
                cur.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it holds the write lock from its first statement.

        Jobs marked with ``mark_changed`` are announced once the commit is done,
        so a listener never looks for a change it cannot see yet.
        """
        changed: list[str] = []
        with self._write_lock or nullcontext(), self._file_lock or nullcontext():
            with self.engine.connect() as conn:
                if self.is_sqlite:
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                conn.info[_CHANGED] = changed
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.info.pop(_CHANGED, None)
        if self._checkpointer is not None:
            self._checkpointer.wrote()
        for job_id in dict.fromkeys(changed):
            self.notifier.publish(job_id)

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()
        if self._file_lock is not None:
            self._file_lock.close()
