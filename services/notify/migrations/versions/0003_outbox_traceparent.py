"""outbox rows remember the W3C traceparent of the write that produced them

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 09:10:00
"""

from collections.abc import Sequence

from shared.bus.outbox_migrations import add_outbox_traceparent_v2, drop_outbox_traceparent_v2

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The same column in every service's outbox (shared/outbox.py).
    add_outbox_traceparent_v2()


def downgrade() -> None:
    drop_outbox_traceparent_v2()
