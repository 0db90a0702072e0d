"""audit trail: who read or wrote which record, append-only

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 08:58:10.798076
"""

from collections.abc import Sequence

from shared.web.audit import create_audit_trail_v1, drop_audit_trail_v1

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The same table in every service (shared/web/audit.py).
    create_audit_trail_v1()


def downgrade() -> None:
    drop_audit_trail_v1()
