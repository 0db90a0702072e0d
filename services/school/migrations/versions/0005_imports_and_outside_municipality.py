"""bulk import and outside the municipality: external_id (unique) on school_plan, school_start,
school_end; placement_view.outside_municipality and external_id

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("school_plan", "school_start", "school_end")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("external_id", sa.Text(), nullable=True))
        op.create_unique_constraint(op.f(f"uq_{table}_external_id"), table, ["external_id"])
    op.add_column("placement_view", sa.Column("outside_municipality", sa.Boolean(), nullable=True))
    op.add_column("placement_view", sa.Column("external_id", sa.Text(), nullable=True))
    op.create_unique_constraint(op.f("uq_placement_view_external_id"), "placement_view", ["external_id"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_placement_view_external_id"), "placement_view", type_="unique")
    op.drop_column("placement_view", "external_id")
    op.drop_column("placement_view", "outside_municipality")
    for table in TABLES:
        op.drop_constraint(op.f(f"uq_{table}_external_id"), table, type_="unique")
        op.drop_column(table, "external_id")
