"""pg notify: PostgreSQL announces new jobs and new events to listening processes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 02:25:00

Triggers rather than calls in the code: every path that writes an event (the
locking change, the one-statement fenced change, a batch claim, an enqueue)
is covered, in its own transaction (a NOTIFY is delivered at commit, or not at
all), without another round trip. The payload is ids only: ``<job id>`` on
``prospectpro_jobs`` when a job becomes pending, ``<job id>:<seq>`` on
``prospectpro_events`` for each event. SQLite: nothing (it keeps the in-process
notifier and the poll).
"""
from __future__ import annotations

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_UP = [
    """
    CREATE OR REPLACE FUNCTION prospectpro_notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('prospectpro_events', NEW.job_id || ':' || NEW.seq);
        RETURN NULL;
    END $$
    """,
    """
    CREATE OR REPLACE FUNCTION prospectpro_notify_job() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('prospectpro_jobs', NEW.id);
        RETURN NULL;
    END $$
    """,
    "DROP TRIGGER IF EXISTS job_events_notify ON job_events",
    """
    CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
    FOR EACH ROW EXECUTE FUNCTION prospectpro_notify_event()
    """,
    "DROP TRIGGER IF EXISTS discovery_jobs_notify_insert ON discovery_jobs",
    """
    CREATE TRIGGER discovery_jobs_notify_insert AFTER INSERT ON discovery_jobs
    FOR EACH ROW WHEN (NEW.status = 'pending') EXECUTE FUNCTION prospectpro_notify_job()
    """,
    "DROP TRIGGER IF EXISTS discovery_jobs_notify_update ON discovery_jobs",
    # A job given back (released, a retry scheduled): its run_after says when; a worker
    # woken too early claims nothing and sleeps until the earliest known run_after.
    """
    CREATE TRIGGER discovery_jobs_notify_update AFTER UPDATE OF status, run_after ON discovery_jobs
    FOR EACH ROW WHEN (NEW.status = 'pending' AND (OLD.status <> 'pending' OR OLD.run_after <> NEW.run_after))
    EXECUTE FUNCTION prospectpro_notify_job()
    """,
]

_DOWN = [
    "DROP TRIGGER IF EXISTS discovery_jobs_notify_update ON discovery_jobs",
    "DROP TRIGGER IF EXISTS discovery_jobs_notify_insert ON discovery_jobs",
    "DROP TRIGGER IF EXISTS job_events_notify ON job_events",
    "DROP FUNCTION IF EXISTS prospectpro_notify_job()",
    "DROP FUNCTION IF EXISTS prospectpro_notify_event()",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for statement in _UP:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for statement in _DOWN:
        op.execute(statement)
