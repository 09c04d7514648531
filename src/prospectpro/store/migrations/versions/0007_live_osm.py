"""live OpenStreetMap: coverage records, the geocode cache, the Overpass lease and daily count, extract bounds

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 01:30:00

Extracts imported before this revision get their bounds from the objects
they stored (their file's header box is no longer at hand): that is where a
campaign finds their data, so it is what "inside an imported extract" means.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import prospectpro.store.schema

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('south', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('west', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('north', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('east', sa.Float(), nullable=True))
    for column, fn, axis in (('south', 'MIN', 'latitude'), ('west', 'MIN', 'longitude'),
                             ('north', 'MAX', 'latitude'), ('east', 'MAX', 'longitude')):
        op.execute(
            f"UPDATE datasets SET {column} = (SELECT {fn}(v) FROM ("
            f"SELECT {axis} AS v FROM places WHERE places.dataset = datasets.name "
            f"UNION ALL SELECT {axis} AS v FROM localities WHERE localities.dataset = datasets.name) AS b)"
        )
    op.create_table('place_coverage',
    sa.Column('id', _BIG_ID, autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('tags_key', sa.String(length=1000), nullable=False),
    sa.Column('area_ref', sa.String(length=64), nullable=True),
    sa.Column('south', sa.Float(), nullable=False),
    sa.Column('west', sa.Float(), nullable=False),
    sa.Column('north', sa.Float(), nullable=False),
    sa.Column('east', sa.Float(), nullable=False),
    sa.Column('label', sa.String(length=300), nullable=False),
    sa.Column('elements', sa.Integer(), nullable=False),
    sa.Column('fetched_at', prospectpro.store.schema.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_place_coverage'))
    )
    with op.batch_alter_table('place_coverage', schema=None) as batch_op:
        batch_op.create_index('ix_place_coverage_tags_fetched', ['tags_key', 'fetched_at'], unique=False)
    op.create_table('geocode_cache',
    sa.Column('query_hash', sa.String(length=64), nullable=False),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('response', _JSON, nullable=False),
    sa.Column('fetched_at', prospectpro.store.schema.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('query_hash', name=op.f('pk_geocode_cache'))
    )
    op.create_table('provider_leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=False),
    sa.Column('expires_at', prospectpro.store.schema.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_provider_leases'))
    )
    op.create_table('provider_usage',
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'day', name=op.f('pk_provider_usage'))
    )


def downgrade() -> None:
    op.drop_table('provider_usage')
    op.drop_table('provider_leases')
    op.drop_table('geocode_cache')
    with op.batch_alter_table('place_coverage', schema=None) as batch_op:
        batch_op.drop_index('ix_place_coverage_tags_fetched')
    op.drop_table('place_coverage')
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_column('east')
        batch_op.drop_column('north')
        batch_op.drop_column('west')
        batch_op.drop_column('south')
