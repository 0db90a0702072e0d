"""SS 12000 intake: source positions, syncs, matched enrolments; provenance of starts and ends

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 08:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('school_start', sa.Column('provenance', sa.Text(), server_default=sa.text("'caseworker'"), nullable=False))
    op.add_column('school_end', sa.Column('provenance', sa.Text(), server_default=sa.text("'caseworker'"), nullable=False))
    op.create_table('ss12000_source',
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('position', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_ss12000_source'))
    )
    op.create_table('ss12000_sync',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('entities', sa.Integer(), nullable=False),
    sa.Column('matches', sa.Integer(), nullable=False),
    sa.Column('malformed', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('position_before', sa.DateTime(timezone=True), nullable=True),
    sa.Column('position_after', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ss12000_sync'))
    )
    op.create_index('ix_ss12000_sync_source_started_at', 'ss12000_sync', ['source', 'started_at'], unique=False)
    op.create_table('ss12000_enrolment',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('placement_id', sa.Uuid(), nullable=False),
    sa.Column('child_id', sa.Uuid(), nullable=False),
    sa.Column('enroled_at', sa.Uuid(), nullable=False),
    sa.Column('school_unit_code', sa.Text(), nullable=True),
    sa.Column('school_type', sa.Text(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('cancelled', sa.Boolean(), nullable=False),
    sa.Column('modified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('school_start_id', sa.Uuid(), nullable=True),
    sa.Column('school_end_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ss12000_enrolment')),
    sa.UniqueConstraint('source', 'placement_id', 'enroled_at', 'start_date', name=op.f('uq_ss12000_enrolment_source'))
    )
    op.create_index(op.f('ix_ss12000_enrolment_placement_id'), 'ss12000_enrolment', ['placement_id'], unique=False)
    op.create_index('ix_ss12000_enrolment_unsettled', 'ss12000_enrolment', ['source', 'outcome'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_ss12000_enrolment_unsettled', table_name='ss12000_enrolment')
    op.drop_index(op.f('ix_ss12000_enrolment_placement_id'), table_name='ss12000_enrolment')
    op.drop_table('ss12000_enrolment')
    op.drop_index('ix_ss12000_sync_source_started_at', table_name='ss12000_sync')
    op.drop_table('ss12000_sync')
    op.drop_table('ss12000_source')
    op.drop_column('school_end', 'provenance')
    op.drop_column('school_start', 'provenance')
