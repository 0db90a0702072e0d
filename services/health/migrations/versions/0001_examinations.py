"""examinations

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 07:28:28.150826
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
    op.create_table('examination',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('placement_id', sa.Uuid(), nullable=False),
    sa.Column('child_id', sa.Uuid(), nullable=False),
    sa.Column('district', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('booked_date', sa.Date(), nullable=True),
    sa.Column('provider', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind IN ('health', 'dental')", name=op.f('ck_examination_kind_known')),
    sa.CheckConstraint("status <> 'booked' OR booked_date = date", name=op.f('ck_examination_booked_date_is_date')),
    sa.CheckConstraint("status IN ('booked', 'completed', 'declined', 'missed')", name=op.f('ck_examination_status_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_examination'))
    )
    op.create_index(op.f('ix_examination_child_id'), 'examination', ['child_id'], unique=False)
    op.create_index('ix_examination_district_kind_status', 'examination', ['district', 'kind', 'status'], unique=False)
    op.create_index(op.f('ix_examination_placement_id'), 'examination', ['placement_id'], unique=False)
    op.create_index('ux_examination_open_booking', 'examination', ['placement_id', 'kind'], unique=True, postgresql_where=sa.text("status = 'booked'"))
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
    op.create_table('examination_status',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('examination_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('booked', 'completed', 'declined', 'missed')", name=op.f('ck_examination_status_status_known')),
    sa.ForeignKeyConstraint(['examination_id'], ['examination.id'], name=op.f('fk_examination_status_examination_id_examination')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_examination_status'))
    )
    op.create_index(op.f('ix_examination_status_examination_id'), 'examination_status', ['examination_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_examination_status_examination_id'), table_name='examination_status')
    op.drop_table('examination_status')
    op.drop_index(op.f('ix_placement_view_child_id'), table_name='placement_view')
    op.drop_table('placement_view')
    op.drop_index('ix_outbox_unsent', table_name='outbox', postgresql_where=sa.text('sent_at IS NULL'))
    op.drop_table('outbox')
    op.drop_table('inbox')
    op.drop_index('ux_examination_open_booking', table_name='examination', postgresql_where=sa.text("status = 'booked'"))
    op.drop_index(op.f('ix_examination_placement_id'), table_name='examination')
    op.drop_index('ix_examination_district_kind_status', table_name='examination')
    op.drop_index(op.f('ix_examination_child_id'), table_name='examination')
    op.drop_table('examination')
