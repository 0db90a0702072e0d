"""bulk import, outside the municipality, school starts seen: placement.external_id (unique),
placement.outside_municipality; school_start_seen and inbox (the consumer of obruten.school)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("placement", sa.Column("outside_municipality", sa.Boolean(), nullable=True))
    op.add_column("placement", sa.Column("external_id", sa.Text(), nullable=True))
    op.create_unique_constraint(op.f("uq_placement_external_id"), "placement", ["external_id"])
    op.create_table(
        "school_start_seen",
        sa.Column("school_start_id", sa.Uuid(), nullable=False),
        sa.Column("placement_id", sa.Uuid(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("school_start_id", name=op.f("pk_school_start_seen")),
    )
    op.create_index(op.f("ix_school_start_seen_placement_id"), "school_start_seen", ["placement_id"], unique=False)
    op.create_table(
        "inbox",
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("source", "event_id", name=op.f("pk_inbox")),
    )


def downgrade() -> None:
    op.drop_table("inbox")
    op.drop_index(op.f("ix_school_start_seen_placement_id"), table_name="school_start_seen")
    op.drop_table("school_start_seen")
    op.drop_constraint(op.f("uq_placement_external_id"), "placement", type_="unique")
    op.drop_column("placement", "external_id")
    op.drop_column("placement", "outside_municipality")
