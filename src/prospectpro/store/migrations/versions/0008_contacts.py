"""contacts: the suppression list; a lead's e-mail source, confidence and enrichment data

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 02:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import prospectpro.store.schema

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('suppressions',
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', prospectpro.store.schema.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('value', name=op.f('pk_suppressions'))
    )
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_source', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('email_confidence', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('enrichment', _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('leads', schema=None) as batch_op:
        batch_op.drop_column('enrichment')
        batch_op.drop_column('email_confidence')
        batch_op.drop_column('email_source')
    op.drop_table('suppressions')
