"""a commit that wrote outbox rows NOTIFYs the relays, whichever process wrote them

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 14:40:00
"""

from collections.abc import Sequence

from shared.bus.outbox_migrations import add_outbox_notify_v3, drop_outbox_notify_v3

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The same trigger on every service's outbox (shared/bus/outbox.py).
    add_outbox_notify_v3()


def downgrade() -> None:
    drop_outbox_notify_v3()
