"""PostgreSQL LISTEN/NOTIFY: one listening connection per process, shared by its workers and its event hub.

Migration 0009's triggers notify, in the writing transaction (delivered at its
commit): ``prospectpro_jobs`` with a job id when a job becomes pending, and
``prospectpro_events`` with ``<job id>:<seq>`` for each event. A thread holds
one autocommit psycopg connection that LISTENs on both and calls the
subscribers. A notification is only a hint to look: the rows are the truth.

A dropped connection (a database restart, a network cut) is reconnected with
backoff; after every (re)connect the ``on_connect`` subscribers run, so the
hub reads what it missed from the event log and workers look for work —
nothing sent while nobody listened is lost, since nobody relied on it alone.

SQLite has none of this (``acquire`` returns None): it keeps the in-process
notifier and the poll.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from prospectpro.store.db import Database

log = logging.getLogger(__name__)

JOBS_CHANNEL = "prospectpro_jobs"
EVENTS_CHANNEL = "prospectpro_events"

JobListener = Callable[[str], None]
EventListener = Callable[[str, int], None]
ConnectListener = Callable[[], None]

# Without traffic a half-open connection (the server's host vanished) would never
# raise; a ping this often finds it, as do the TCP keepalives.
PING_SECONDS = 5.0
_WAIT_SECONDS = 0.25  # how long one wait for notifications lasts: bounds how fast ``stop`` is
_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 2.0


def conninfo(url: str) -> str:
    """The libpq form of a SQLAlchemy ``postgresql+psycopg://`` URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _split_event(payload: str) -> tuple[str, int] | None:
    job_id, _, seq = payload.rpartition(":")
    try:
        return job_id, int(seq)
    except ValueError:
        return None


class PgListener:
    """One LISTEN connection and its subscribers; ``start``/``stop`` by ``acquire``/``release``."""

    def __init__(self, url: str, *, connect_timeout: float = 2.0) -> None:
        self._conninfo = conninfo(url)
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._jobs: set[JobListener] = set()
        self._events: set[EventListener] = set()
        self._connects: set[ConnectListener] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.connects = 0  # how many times it (re)connected: tests and ``doctor`` read it
        self.users = 0  # acquire/release count

    # -- subscribing (any thread) -----------------------------------------
    def on_job(self, listener: JobListener) -> Callable[[], None]:
        return self._add(self._jobs, listener)

    def on_event(self, listener: EventListener) -> Callable[[], None]:
        return self._add(self._events, listener)

    def on_connect(self, listener: ConnectListener) -> Callable[[], None]:
        return self._add(self._connects, listener)

    def _add(self, group: set[Any], listener: Any) -> Callable[[], None]:
        with self._lock:
            group.add(listener)

        def remove() -> None:
            with self._lock:
                group.discard(listener)

        return remove

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    # -- the listening thread ------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=max(1, int(self._connect_timeout)),
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            application_name="prospectpro-listen",
        )
        conn.execute(f"LISTEN {JOBS_CHANNEL}")
        conn.execute(f"LISTEN {EVENTS_CHANNEL}")
        return conn

    def _run(self) -> None:
        backoff = _BACKOFF_FIRST
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except Exception as exc:  # the database is away: try again, less often
                log.warning("LISTEN connection failed (retrying in %.2f s): %s", backoff, exc)
                self._stop.wait(backoff)
                backoff = min(2 * backoff, _BACKOFF_MAX)
                continue
            backoff = _BACKOFF_FIRST
            self.connects += 1
            self.connected.set()
            try:
                self._fire_connect()  # after LISTEN: what is written from now on is heard, the rest is read
                self._listen(conn)
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("LISTEN connection lost; reconnecting: %s", exc)
            finally:
                self.connected.clear()
                try:
                    conn.close()
                except Exception:  # already broken: nothing to close cleanly
                    pass

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        last_traffic = time.monotonic()
        while not self._stop.is_set():
            got = False
            for notify in conn.notifies(timeout=_WAIT_SECONDS):
                got = True
                self._dispatch(notify.channel, notify.payload)
            now = time.monotonic()
            if got:
                last_traffic = now
            elif now - last_traffic >= PING_SECONDS:
                conn.execute("SELECT 1")
                last_traffic = now

    def _dispatch(self, channel: str, payload: str) -> None:
        calls: list[Callable[[], None]] = []
        with self._lock:
            if channel == JOBS_CHANNEL:
                calls = [functools.partial(job_listener, payload) for job_listener in self._jobs]
            elif channel == EVENTS_CHANNEL and (parsed := _split_event(payload)) is not None:
                calls = [functools.partial(event_listener, *parsed) for event_listener in self._events]
        for call in calls:
            try:
                call()
            except Exception:  # one subscriber's fault must neither silence the others nor drop the connection
                log.exception("a LISTEN subscriber failed")

    def _fire_connect(self) -> None:
        with self._lock:
            connects = list(self._connects)
        for listener in connects:
            try:
                listener()
            except Exception:
                log.exception("a LISTEN reconnect subscriber failed")


_shared: weakref.WeakKeyDictionary[Database, tuple[int, PgListener]] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def acquire(db: Database) -> PgListener | None:
    """This process's listener for ``db`` (started on first use); None on SQLite. Pair with ``release``."""
    if db.is_sqlite:
        return None
    with _shared_lock:
        held = _shared.get(db)
        if held is None or held[0] != os.getpid():  # a forked child needs its own thread and connection
            held = (os.getpid(), PgListener(db.url))
            _shared[db] = held
        listener = held[1]
        listener.users += 1
        listener.start()
        return listener


def release(db: Database, listener: PgListener | None) -> None:
    """One user fewer; the last one stops the thread and closes the connection."""
    if listener is None:
        return
    with _shared_lock:
        listener.users -= 1
        if listener.users > 0:
            return
        if (held := _shared.get(db)) is not None and held[1] is listener:
            del _shared[db]
    listener.stop()


def probe(db: Database, timeout: float = 3.0) -> float:
    """``doctor``: a NOTIFY sent through the pool reaches a fresh LISTEN connection; seconds it took. Raises if not."""
    channel = f"prospectpro_probe_{os.getpid()}"
    with psycopg.connect(conninfo(db.url), autocommit=True, connect_timeout=max(1, int(timeout))) as conn:
        conn.execute(f"LISTEN {channel}")
        sent = time.monotonic()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as sender:
            sender.exec_driver_sql(f"NOTIFY {channel}, 'probe'")
        for notify in conn.notifies(timeout=timeout, stop_after=1):
            if notify.payload == "probe":
                return time.monotonic() - sent
    raise TimeoutError(f"no notification within {timeout:.0f} s")


def server_facts(db: Database) -> dict[str, Any]:
    """``doctor``: the server's version, whether this role is a superuser, connections used of the maximum."""
    with db.engine.connect() as conn:
        row = conn.exec_driver_sql(
            "SELECT current_setting('server_version'), "
            "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
            "current_setting('max_connections')::int, "
            "current_setting('superuser_reserved_connections')::int, "
            "(SELECT count(*) FROM pg_stat_activity)"
        ).one()
    version, superuser, maximum, reserved, used = row
    return {"version": version, "superuser": bool(superuser), "max": maximum - reserved, "used": int(used)}
