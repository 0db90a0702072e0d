"""children and placements

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 07:12:10.153351
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # btree_gist lets the exclusion constraint compare child_id with = inside a GiST index.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table('child',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('personnummer', sa.Text(), nullable=False),
    sa.Column('coordination_number', sa.Boolean(), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('protected_identity', sa.Boolean(), nullable=False),
    sa.Column('district', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_child')),
    sa.UniqueConstraint('personnummer', name=op.f('uq_child_personnummer'))
    )
    op.create_table('outbox',
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('aggregatetype', sa.Text(), nullable=False),
    sa.Column('aggregateid', sa.Text(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_outbox')),
    sa.UniqueConstraint('id', name=op.f('uq_outbox_id'))
    )
    op.create_index('ix_outbox_unsent', 'outbox', ['seq'], unique=False, postgresql_where=sa.text('sent_at IS NULL'))
    op.create_table('placement',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('child_id', sa.Uuid(), nullable=False),
    sa.Column('district', sa.Text(), nullable=False),
    sa.Column('form', sa.Text(), nullable=False),
    sa.Column('variants', sa.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('legal_basis', sa.Text(), nullable=False),
    sa.Column('duration', sa.Text(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('planned_end_date', sa.Date(), nullable=True),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('end_reason', sa.Text(), nullable=True),
    sa.Column('school_change', sa.Boolean(), nullable=False),
    sa.Column('caseworker', sa.Text(), nullable=True),
    sa.Column('location', sa.Text(), nullable=True),
    sa.Column('previous_placement_id', sa.Uuid(), nullable=True),
    sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    postgresql.ExcludeConstraint((sa.text('child_id'), '='), (sa.text("daterange(start_date, end_date, '[)')"), '&&'), using='gist', name='placement_no_overlap'),
    sa.CheckConstraint('(end_date IS NULL) = (end_reason IS NULL)', name=op.f('ck_placement_end_has_reason')),
    sa.CheckConstraint('end_date IS NULL OR end_date >= start_date', name=op.f('ck_placement_end_not_before_start')),
    sa.ForeignKeyConstraint(['child_id'], ['child.id'], name=op.f('fk_placement_child_id_child')),
    sa.ForeignKeyConstraint(['previous_placement_id'], ['placement.id'], name=op.f('fk_placement_previous_placement_id_placement')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_placement'))
    )
    op.create_index(op.f('ix_placement_child_id'), 'placement', ['child_id'], unique=False)
    op.create_index('ix_placement_dates', 'placement', ['start_date', 'end_date'], unique=False)
    op.create_index('ix_placement_district_form', 'placement', ['district', 'form'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_placement_district_form', table_name='placement')
    op.drop_index('ix_placement_dates', table_name='placement')
    op.drop_index(op.f('ix_placement_child_id'), table_name='placement')
    op.drop_table('placement')
    op.drop_index('ix_outbox_unsent', table_name='outbox', postgresql_where=sa.text('sent_at IS NULL'))
    op.drop_table('outbox')
    op.drop_table('child')
