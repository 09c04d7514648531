"""rate limits: one token bucket per key

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 00:55:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import prospectpro.store.schema


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_limits',
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('tokens', sa.Float(), nullable=False),
    sa.Column('updated_at', prospectpro.store.schema.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_limits'))
    )


def downgrade() -> None:
    op.drop_table('rate_limits')
