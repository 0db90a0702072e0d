"""The outbox's migration steps, shared by every service's history (each owns its outbox table)."""

from __future__ import annotations

from sqlalchemy import Column, Text

from shared.bus.outbox import OUTBOX_CHANNEL, RELAY_IN_PROCESS


def add_outbox_traceparent_v2() -> None:
    """Migration step shared by every service's history (each owns its outbox table)."""
    from alembic import op

    op.add_column("outbox", Column("traceparent", Text))


def drop_outbox_traceparent_v2() -> None:
    from alembic import op

    op.drop_column("outbox", "traceparent")


def add_outbox_notify_v3() -> None:
    """Migration step shared by every service's history: a statement that inserted outbox rows
    NOTIFYs OUTBOX_CHANNEL, delivered when its transaction commits, so that a relay is woken
    whichever process wrote them (`obruten relay`, a bulk load), except where the writing process
    runs its own relay (RELAY_IN_PROCESS), which its commit hook wakes. Per statement, not per
    row; PostgreSQL folds a transaction's identical notifications into one."""
    from alembic import op

    op.execute(
        "CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF current_setting('{RELAY_IN_PROCESS}', true) IS DISTINCT FROM 'on' AND EXISTS (SELECT FROM inserted) "
        f"THEN PERFORM pg_notify('{OUTBOX_CHANNEL}', ''); END IF; "
        "RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox REFERENCING NEW TABLE AS inserted "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()"
    )


def drop_outbox_notify_v3() -> None:
    from alembic import op

    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute("DROP FUNCTION outbox_notify()")
