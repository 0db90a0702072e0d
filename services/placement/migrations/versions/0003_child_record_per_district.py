"""a child record per district: personnummer unique within a district, not across districts

Secrecy between districts: a district registering a child another district holds gets its own
record (the same answer as for a child nobody holds), so no answer says that another district
knows the child (services/placement/models.py, Child).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 08:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("uq_child_personnummer"), "child", type_="unique")
    op.create_unique_constraint(op.f("uq_child_district_personnummer"), "child", ["district", "personnummer"])
    op.create_index(op.f("ix_child_personnummer"), "child", ["personnummer"], unique=False)


def downgrade() -> None:
    # Fails, as it should, once two districts hold records of one person.
    op.drop_index(op.f("ix_child_personnummer"), table_name="child")
    op.drop_constraint(op.f("uq_child_district_personnummer"), "child", type_="unique")
    op.create_unique_constraint(op.f("uq_child_personnummer"), "child", ["personnummer"])
