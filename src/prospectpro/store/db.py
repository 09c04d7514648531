"""The database handle: one engine, read and write transactions, wake-ups.

SQLite (the embedded default) runs in WAL mode with the driver's own
transaction handling switched off, so that a write transaction starts with
``BEGIN IMMEDIATE``: the write lock is taken up front, which is what makes a
claim atomic across processes. Inside one process writers also queue on a
lock, because SQLite's busy handler sleeps in coarse steps and would turn
contention into latency spikes.

Every wait for the write lock is bounded (``write_lock_timeout``): a writer
that holds it too long (a frozen process, SIGSTOP) makes the others fail with
``WriteLockTimeout`` instead of hanging, and says who it is in the lock file,
so that ``/healthz`` can name it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError

from prospectpro.store.checkpoint import AUTOCHECKPOINT_PAGES, WalCheckpointer

log = logging.getLogger(__name__)

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
            try:
                listener(job_id)
            except Exception:  # one listener's fault must not keep the others from hearing
                log.exception("a job-change listener failed")


class WriteLockTimeout(OperationalError):
    """The write lock did not come free in time: another writer has held it too long.

    Made like the error of SQLite's own busy timeout ("database is locked"),
    because it means the same to the caller: nothing was written, try again
    shortly (the API answers 503 with Retry-After; a worker retries).
    """


def _lock_timeout(message: str) -> WriteLockTimeout:
    return WriteLockTimeout(None, None, sqlite3.OperationalError(f"database is locked: {message}"))


DEFAULT_WRITE_LOCK_TIMEOUT = 10.0
_RECORD_BYTES = 40  # "pid wall-clock-ms", space-padded: written over in place, never grows
_BLANK = b" " * _RECORD_BYTES


@dataclass(frozen=True)
class LockHolder:
    """Who holds the write lock, as the holder wrote it into the lock file."""

    pid: int
    since: float  # time.time() when it took the lock: comparable between processes

    def held_for(self) -> float:
        return max(0.0, time.time() - self.since)

    def describe(self) -> str:
        return f"pid {self.pid} has held the write lock for {self.held_for():.0f} s"


def _record(pid: int) -> bytes:
    return (b"%d %d" % (pid, time.time_ns() // 1_000_000)).ljust(_RECORD_BYTES)


def _parse_record(data: bytes) -> LockHolder | None:
    try:
        pid, since_ms = data.split()
        return LockHolder(pid=int(pid), since=int(since_ms) / 1000)
    except ValueError:  # blank (released, or just taken), or torn by a concurrent write
        return None


class _KernelWaiter:
    """A thread that waits in the kernel for the lock, on an open file of its own, for whoever wants it now.

    A blocking flock wakes the moment the lock is released (polling lags, and
    loses the race to a holder that comes straight back: with three processes
    writing at once, the slowest write took 100–600 ms polling, 25–60 ms
    waiting in the kernel), but it cannot be given a deadline. So
    a writer waits for this thread instead, with one. The thread hands the
    lock over when it gets it; if the writer gave up meanwhile, and no other
    came, it lets the lock go again.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._cond = threading.Condition()
        self._asking: threading.Event | None = None
        self._closed = False
        threading.Thread(target=self._run, name="prospectpro-write-lock", daemon=True).start()

    def wait(self, deadline: float) -> int | None:
        """The descriptor now holding the lock, or None at the deadline."""
        handed = threading.Event()
        with self._cond:
            self._asking = handed
            self._cond.notify()
        if handed.wait(max(0.0, deadline - time.monotonic())):
            return self._fd
        with self._cond:
            if handed.is_set():  # handed over just as the time ran out
                return self._fd
            self._asking = None
        return None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._asking is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    break
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # as long as it takes
            with self._cond:
                asking, self._asking = self._asking, None
                if asking is not None and not self._closed:
                    asking.set()  # the writer holds the lock now, through self._fd, and releases it
                    continue
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


class _FileLock:
    """An exclusive flock on a file beside the database, held around each write transaction.

    Other processes (a second API process, a CLI worker) wait in the kernel
    and wake the moment it is released, instead of in SQLite's busy handler,
    which sleeps 1, 2, 5, 10… ms between tries and turns every collision
    into a latency spike. The uncontended lock is one non-blocking try; a
    contended one is waited for by a thread (``_KernelWaiter``), so that the
    wait can end at a deadline. SQLite's own locking still guards the file
    against anything that does not take this lock.

    The holder writes its pid and the time into the file (one ``pwrite`` of
    a few bytes into the page cache, blanked again on release), so a stuck
    holder can be named by any process.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0
        self._waiter: _KernelWaiter | None = None
        self._held: int | None = None  # the descriptor holding the lock: ours, or the waiter's

    def _open(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child needs its own open files
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
            self._waiter = None  # the parent's thread did not come along
        return self._fd

    def close(self) -> None:
        if self._pid == os.getpid():
            if self._waiter is not None:
                self._waiter.close()
            if self._fd is not None:
                os.close(self._fd)
        self._fd = self._waiter = None

    def acquire(self, deadline: float) -> None:
        """Take the lock before ``deadline`` (``time.monotonic()``), or raise ``WriteLockTimeout``.

        Callers take turns on a lock of their process first: one at a time here.
        """
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._held = fd
        except BlockingIOError:
            if self._waiter is None:
                self._waiter = _KernelWaiter(self.path)
            held = self._waiter.wait(deadline)
            if held is None:
                holder = self.holder()
                raise _lock_timeout(
                    f"timed out waiting for the write lock: {holder.describe() if holder else 'it is busy'}"
                ) from None
            self._held = held
        try:
            os.pwrite(fd, _record(self._pid), 0)
        except OSError:  # the record only informs; the lock is what counts
            pass

    def release(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        try:
            os.pwrite(self._open(), _BLANK, 0)
        except OSError:
            pass
        fcntl.flock(held, fcntl.LOCK_UN)

    def holder(self) -> LockHolder | None:
        """The process holding the lock now, or None when it is free.

        Probed on a file of its own, so this also sees a holder in this
        process. A record left by a holder that was killed is ignored: the
        kernel released its lock, so the probe gets it.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _parse_record(os.pread(fd, _RECORD_BYTES, 0))
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


def _file_lock_for(database: str | None) -> _FileLock | None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _FileLock(path.with_name(path.name + ".lock"))


PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: Engine) -> None:
    """``pool_pre_ping``, but only for a connection that sat unused in the pool for a while.

    A ping is a round trip on every checkout: on a queue job's path it was two
    of eight. A connection given back a moment ago answered then; if it broke
    since, its first statement fails as a disconnect and the callers that retry
    outages (the worker's fenced writes) retry it on a new one.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return  # just connected, or just used
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool replaces it and tries again, as pool_pre_ping does
            raise DisconnectionError() from exc


class Database:
    def __init__(self, url: str, *, echo: bool = False, write_lock_timeout: float = DEFAULT_WRITE_LOCK_TIMEOUT) -> None:
        self.url = url
        self.write_lock_timeout = write_lock_timeout
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self.notifier = Notifier()
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._file_lock = _file_lock_for(parsed.database) if self.is_sqlite else None
        self._checkpointer = WalCheckpointer(parsed.database) if self._file_lock is not None and parsed.database else None
        self.engine = self._create_engine(url, echo)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def _create_engine(self, url: str, echo: bool) -> Engine:
        if not self.is_sqlite:
            # hide_parameters: a logged statement error must not show its values (webhook secrets, tokens).
            pg = create_engine(url, echo=echo, pool_size=10, max_overflow=20, hide_parameters=True)
            _ping_when_idle(pg)
            return pg
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            hide_parameters=True,
            # SQLite's own busy wait (for a writer outside our lock) has the same bound.
            connect_args={"check_same_thread": False, "timeout": self.write_lock_timeout},
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
            cur.execute(f"PRAGMA busy_timeout={int(self.write_lock_timeout * 1000)}")
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
    def write(self, *, foreign_keys: bool = True) -> Iterator[Connection]:
        """A write transaction; on SQLite it holds the write lock from its first statement.

        Jobs marked with ``mark_changed`` are announced once the commit is done,
        so a listener never looks for a change it cannot see yet.

        ``foreign_keys=False`` (SQLite; for migrations, which rebuild tables
        that others reference): the transaction enforces no foreign keys, and
        the caller checks them before it commits. SQLite ignores the pragma
        inside a transaction, so it is set before the transaction begins; the
        connection is closed afterwards rather than pooled without them.
        """
        changed: list[str] = []
        self._lock_for_writing()
        try:
            with self.engine.connect() as conn:
                unchecked = self.is_sqlite and not foreign_keys
                if self.is_sqlite:
                    conn = conn.execution_options(sqlite_begin="IMMEDIATE")
                if unchecked:
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
                conn.info[_CHANGED] = changed
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.info.pop(_CHANGED, None)
                    if unchecked:
                        conn.invalidate()
        finally:
            self._unlock_after_writing()
        if self._checkpointer is not None:
            self._checkpointer.wrote()
        for job_id in dict.fromkeys(changed):
            self.notifier.publish(job_id)

    def _lock_for_writing(self) -> None:
        """On SQLite: this process's lock, then the one shared with other processes, both within the timeout."""
        if self._write_lock is None:
            return
        deadline = time.monotonic() + self.write_lock_timeout  # one bound for both waits
        if not self._write_lock.acquire(timeout=self.write_lock_timeout):
            holder = self.write_lock_holder()
            raise _lock_timeout(
                f"timed out waiting for the write lock behind other writers of this process: "
                f"{holder.describe() if holder else 'one of them holds it'}"
            )
        if self._file_lock is not None:
            try:
                self._file_lock.acquire(deadline)
            except BaseException:
                self._write_lock.release()
                raise

    def _unlock_after_writing(self) -> None:
        if self._write_lock is None:
            return
        try:
            if self._file_lock is not None:
                self._file_lock.release()
        finally:
            self._write_lock.release()

    def write_lock_holder(self) -> LockHolder | None:
        """Who holds the cross-process write lock now (SQLite files only)."""
        return self._file_lock.holder() if self._file_lock is not None else None

    def stalled_writer(self) -> str | None:
        """Says who, when a writer has held the write lock as long as others wait for it: writes are failing."""
        holder = self.write_lock_holder()
        if holder is None or holder.held_for() < self.write_lock_timeout:
            return None
        return holder.describe()

    def dispose(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.engine.dispose()
        if self._file_lock is not None:
            self._file_lock.close()
