"""job kinds: discovery_jobs.kind, campaign_id only for campaign jobs, the system owner;
an Idempotency-Key of up to 255 characters

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10 12:00:00

Every job before this revision was a campaign: the server default fills
``kind`` in for them, in place. Making ``campaign_id`` nullable rebuilds the
table on SQLite (batch mode), which ``prospectpro.store.migrate`` runs
without enforcing foreign keys and checks afterwards: job_events,
job_candidates and notifications reference these rows.
"""
from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import prospectpro.store.schema
from prospectpro.store.schema import SYSTEM_USER_ID

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('discovery_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=32), server_default='campaign', nullable=False))
        batch_op.alter_column('campaign_id', existing_type=sa.String(length=36), nullable=True)
        # The API's rule: 1-255 visible ASCII characters (issue 7 had to stop at the old 200).
        batch_op.alter_column(
            'idempotency_key', existing_type=sa.String(length=200), type_=sa.String(length=255), existing_nullable=True
        )
        batch_op.drop_index('ix_discovery_jobs_owner_created')
        batch_op.create_index('ix_discovery_jobs_owner_kind_created', ['owner_id', 'kind', 'created_at'], unique=False)
    # The owner of the jobs the system runs for itself.
    op.bulk_insert(
        sa.table(
            "users",
            sa.column("id", sa.String),
            sa.column("name", sa.String),
            sa.column("kind", sa.String),
            sa.column("created_at", prospectpro.store.schema.UTCDateTime()),
        ),
        [{"id": SYSTEM_USER_ID, "name": "system", "kind": "system", "created_at": datetime.now(UTC)}],
    )


def downgrade() -> None:
    # Only campaigns existed before: the other kinds' jobs cannot be kept.
    op.execute("DELETE FROM notifications WHERE job_id IN (SELECT id FROM discovery_jobs WHERE kind <> 'campaign')")
    op.execute("DELETE FROM job_candidates WHERE job_id IN (SELECT id FROM discovery_jobs WHERE kind <> 'campaign')")
    op.execute("DELETE FROM job_events WHERE job_id IN (SELECT id FROM discovery_jobs WHERE kind <> 'campaign')")
    op.execute("DELETE FROM discovery_jobs WHERE kind <> 'campaign'")
    with op.batch_alter_table('discovery_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_discovery_jobs_owner_kind_created')
        batch_op.create_index('ix_discovery_jobs_owner_created', ['owner_id', 'created_at'], unique=False)
        batch_op.alter_column('campaign_id', existing_type=sa.String(length=36), nullable=False)
        batch_op.alter_column(
            'idempotency_key', existing_type=sa.String(length=255), type_=sa.String(length=200), existing_nullable=True
        )
        batch_op.drop_column('kind')
    op.execute(f"DELETE FROM users WHERE id = '{SYSTEM_USER_ID}'")
