"""partial index over unresolved alerts, read by the alerts gauge of /metrics

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_alert_unresolved",
        "alert",
        ["rule", "status", "level_name"],
        postgresql_where=sa.text("status <> 'resolved'"),
    )


def downgrade() -> None:
    op.drop_index("ix_alert_unresolved", table_name="alert")
