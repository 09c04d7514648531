"""delivered businesses: one row per (owner, business), taken when leads are stored

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:00:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import prospectpro.store.schema


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('delivered_businesses',
    sa.Column('owner_id', sa.String(length=36), nullable=False),
    sa.Column('fingerprint', sa.String(length=400), nullable=False),
    sa.Column('campaign_id', sa.String(length=36), nullable=False),
    sa.Column('delivered_at', prospectpro.store.schema.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_delivered_businesses_campaign_id_campaigns')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_delivered_businesses_owner_id_users')),
    sa.PrimaryKeyConstraint('owner_id', 'fingerprint', name=op.f('pk_delivered_businesses'))
    )
    # What was delivered before this table: every lead, once per owner, as
    # delivered by the campaign that stored it first.
    op.execute(
        """
        INSERT INTO delivered_businesses (owner_id, fingerprint, campaign_id, delivered_at)
        SELECT l.owner_id, l.dedup_key,
               (SELECT f.campaign_id FROM leads f
                 WHERE f.owner_id = l.owner_id AND f.dedup_key = l.dedup_key
                 ORDER BY f.created_at, f.id LIMIT 1),
               MIN(l.created_at)
          FROM leads l
         GROUP BY l.owner_id, l.dedup_key
        """
    )


def downgrade() -> None:
    op.drop_table('delivered_businesses')
