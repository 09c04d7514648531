"""the gate's ledger: api_calls recreated, users.monthly_budget, Google fields on leads, provider_state

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:00:00

Nothing ever wrote the old ``api_calls`` (no provider was wired to it), so it
is dropped and created in its new shape rather than altered. The new columns
of ``users`` and ``leads`` are nullable: existing rows keep working as they are.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import prospectpro.store.schema

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
_MONEY = sa.Numeric(precision=12, scale=4)


def upgrade() -> None:
    with op.batch_alter_table('api_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_calls_campaign_id'))
    op.drop_table('api_calls')
    op.create_table('api_calls',
    sa.Column('id', _BIG_ID, autoincrement=True, nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=False),
    sa.Column('request', _JSON, nullable=False),
    sa.Column('owner_id', sa.String(length=36), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=False),
    sa.Column('campaign_id', sa.String(length=36), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cost', _MONEY, nullable=False),
    sa.Column('saved_cost', _MONEY, nullable=False),
    sa.Column('response', _JSON, nullable=True),
    sa.Column('reused_from', _BIG_ID, nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', prospectpro.store.schema.UTCDateTime(), nullable=False),
    sa.Column('completed_at', prospectpro.store.schema.UTCDateTime(), nullable=True),
    sa.Column('reusable_until', prospectpro.store.schema.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_calls')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_api_calls_idempotency_key'))
    )
    with op.batch_alter_table('api_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_calls_job_id'), ['job_id'], unique=False)
        batch_op.create_index('ix_api_calls_reuse', ['owner_id', 'provider', 'operation', 'request_hash'], unique=False)
        batch_op.create_index('ix_api_calls_owner_created', ['owner_id', 'created_at'], unique=False)

    op.create_table('provider_state',
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('breaker_open_until', prospectpro.store.schema.UTCDateTime(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('updated_at', prospectpro.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('provider', name=op.f('pk_provider_state'))
    )

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('monthly_budget', _MONEY, nullable=True))

    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rating', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('review_count', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('field_sources', _JSON, nullable=True))
        batch_op.add_column(sa.Column('google_expires_at', prospectpro.store.schema.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_leads_google_expires_at'), ['google_expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_leads_google_expires_at'))
        batch_op.drop_column('google_expires_at')
        batch_op.drop_column('field_sources')
        batch_op.drop_column('review_count')
        batch_op.drop_column('rating')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('monthly_budget')

    op.drop_table('provider_state')

    # The ledger's rows have no place in the old shape (nothing read it then).
    with op.batch_alter_table('api_calls', schema=None) as batch_op:
        batch_op.drop_index('ix_api_calls_owner_created')
        batch_op.drop_index('ix_api_calls_reuse')
        batch_op.drop_index(batch_op.f('ix_api_calls_job_id'))
    op.drop_table('api_calls')
    op.create_table('api_calls',
    sa.Column('id', _BIG_ID, autoincrement=True, nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=False),
    sa.Column('request_key', sa.String(length=128), nullable=False),
    sa.Column('job_id', sa.String(length=36), nullable=True),
    sa.Column('campaign_id', sa.String(length=36), nullable=True),
    sa.Column('owner_id', sa.String(length=36), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('cost', _MONEY, nullable=False),
    sa.Column('response', _JSON, nullable=True),
    sa.Column('created_at', prospectpro.store.schema.UTCDateTime(), nullable=False),
    sa.Column('completed_at', prospectpro.store.schema.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_calls')),
    sa.UniqueConstraint('request_key', name=op.f('uq_api_calls_request_key'))
    )
    with op.batch_alter_table('api_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_calls_campaign_id'), ['campaign_id'], unique=False)
