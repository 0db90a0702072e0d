"""bulk import: examination.external_id (unique), placement_view.external_id (unique)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("examination", "placement_view")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("external_id", sa.Text(), nullable=True))
        op.create_unique_constraint(op.f(f"uq_{table}_external_id"), table, ["external_id"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_constraint(op.f(f"uq_{table}_external_id"), table, type_="unique")
        op.drop_column(table, "external_id")
