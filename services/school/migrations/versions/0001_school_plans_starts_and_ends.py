"""school plans, starts and ends

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 07:27:06.746743
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
    # btree_gist lets the exclusion constraint compare placement_id with = inside a GiST index.
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table('inbox',
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('type', sa.Text(), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('source', 'event_id', name=op.f('pk_inbox'))
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
    op.create_table('placement_view',
    sa.Column('placement_id', sa.Uuid(), nullable=False),
    sa.Column('child_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('district', sa.Text(), nullable=False),
    sa.Column('form', sa.Text(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('end_reason', sa.Text(), nullable=True),
    sa.Column('school_change', sa.Boolean(), nullable=False),
    sa.Column('child_birth_date', sa.Date(), nullable=False),
    sa.Column('protected_identity', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('placement_id', name=op.f('pk_placement_view'))
    )
    op.create_index(op.f('ix_placement_view_child_id'), 'placement_view', ['child_id'], unique=False)
    op.create_table('school_plan',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('placement_id', sa.Uuid(), nullable=False),
    sa.Column('child_id', sa.Uuid(), nullable=False),
    sa.Column('district', sa.Text(), nullable=False),
    sa.Column('drawn_up_on', sa.Date(), nullable=False),
    sa.Column('planned_provision', sa.Text(), nullable=True),
    sa.Column('planned_school_unit_code', sa.Text(), nullable=True),
    sa.Column('responsible', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("planned_school_unit_code ~ '^[0-9]{8}$'", name=op.f('ck_school_plan_planned_school_unit_code_format')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_school_plan'))
    )
    op.create_index(op.f('ix_school_plan_child_id'), 'school_plan', ['child_id'], unique=False)
    op.create_index(op.f('ix_school_plan_placement_id'), 'school_plan', ['placement_id'], unique=False)
    op.create_table('school_start',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('placement_id', sa.Uuid(), nullable=False),
    sa.Column('child_id', sa.Uuid(), nullable=False),
    sa.Column('district', sa.Text(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('provision', sa.Text(), nullable=False),
    sa.Column('school_unit_code', sa.Text(), nullable=True),
    sa.Column('placement_start_date', sa.Date(), nullable=False),
    sa.Column('school_change', sa.Boolean(), nullable=False),
    sa.Column('days_to_school_start', sa.Integer(), nullable=True),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    postgresql.ExcludeConstraint((sa.text('placement_id'), '='), (sa.text("daterange(start_date, end_date, '[)')"), '&&'), using='gist', name='school_start_no_overlap'),
    sa.CheckConstraint("(provision = 'school_unit') = (school_unit_code IS NOT NULL)", name=op.f('ck_school_start_school_unit_has_code')),
    sa.CheckConstraint("school_unit_code ~ '^[0-9]{8}$'", name=op.f('ck_school_start_school_unit_code_format')),
    sa.CheckConstraint('end_date IS NULL OR end_date >= start_date', name=op.f('ck_school_start_end_not_before_start')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_school_start'))
    )
    op.create_index(op.f('ix_school_start_child_id'), 'school_start', ['child_id'], unique=False)
    op.create_index('ix_school_start_district_start_date', 'school_start', ['district', 'start_date'], unique=False)
    op.create_index(op.f('ix_school_start_placement_id'), 'school_start', ['placement_id'], unique=False)
    op.create_table('school_end',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('school_start_id', sa.Uuid(), nullable=False),
    sa.Column('placement_id', sa.Uuid(), nullable=False),
    sa.Column('child_id', sa.Uuid(), nullable=False),
    sa.Column('district', sa.Text(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['school_start_id'], ['school_start.id'], name=op.f('fk_school_end_school_start_id_school_start')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_school_end')),
    sa.UniqueConstraint('school_start_id', name=op.f('uq_school_end_school_start_id'))
    )
    op.create_index(op.f('ix_school_end_placement_id'), 'school_end', ['placement_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_school_end_placement_id'), table_name='school_end')
    op.drop_table('school_end')
    op.drop_index(op.f('ix_school_start_placement_id'), table_name='school_start')
    op.drop_index('ix_school_start_district_start_date', table_name='school_start')
    op.drop_index(op.f('ix_school_start_child_id'), table_name='school_start')
    op.drop_table('school_start')
    op.drop_index(op.f('ix_school_plan_placement_id'), table_name='school_plan')
    op.drop_index(op.f('ix_school_plan_child_id'), table_name='school_plan')
    op.drop_table('school_plan')
    op.drop_index(op.f('ix_placement_view_child_id'), table_name='placement_view')
    op.drop_table('placement_view')
    op.drop_index('ix_outbox_unsent', table_name='outbox', postgresql_where=sa.text('sent_at IS NULL'))
    op.drop_table('outbox')
    op.drop_table('inbox')
