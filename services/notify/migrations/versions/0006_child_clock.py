"""the child's clock: when notify learnt of each placement (settle period), planned school starts on alerts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "placement_arrival",
        sa.Column("placement_id", sa.Uuid(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("placement_id", name=op.f("pk_placement_arrival")),
    )
    op.add_column("alert", sa.Column("planned_school_start", sa.Date(), nullable=True))


def downgrade() -> None:
    op.drop_column("alert", "planned_school_start")
    op.drop_table("placement_arrival")
