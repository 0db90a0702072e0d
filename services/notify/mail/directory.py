"""Who is who: people (subject -> address and delivery choice), the functional mailboxes of each
district and level, and each placement's named caseworker as the placement events say."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.mail.models import MailMessage, MailPerson, MailRecipient, PlacementCaseworker
from shared.bus.batch import by_column, newest, unnest
from shared.bus.inbox import event_data
from shared.contracts.envelope import CloudEvent
from shared.contracts.placement import PLACEMENT_CHANGED, PLACEMENT_ENDED, PLACEMENT_STARTED, PlacementSnapshot
from shared.kernel.errors import Problem, not_found

_PLACEMENT_EVENTS = {PLACEMENT_STARTED.type, PLACEMENT_CHANGED.type, PLACEMENT_ENDED.type}


async def record_caseworkers(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    """The consumer's part for mail: keep the caseworker of each placement's newest version
    (one statement for a batch; an older version than the one on file changes nothing)."""
    snapshots: list[PlacementSnapshot] = [event_data(e) for e in events if e.type in _PLACEMENT_EVENTS]
    rows = [
        {"placement_id": s.placement_id, "caseworker": s.caseworker, "version": s.version}
        for s in newest(snapshots, key=lambda s: s.placement_id, version=lambda s: s.version)
    ]
    if rows:
        await session.execute(_CASEWORKERS, by_column(rows, _COLUMNS))


def _caseworkers() -> Any:
    table = cast(Table, PlacementCaseworker.__table__)
    stmt = pg_insert(table).from_select(_COLUMNS, unnest(table, _COLUMNS))
    return stmt.on_conflict_do_update(
        index_elements=[table.c.placement_id],
        set_={"caseworker": stmt.excluded.caseworker, "version": stmt.excluded.version},
        where=table.c.version < stmt.excluded.version,
    )


_COLUMNS = ["placement_id", "caseworker", "version"]
# Built once: the same statement object is a cache hit for SQLAlchemy's compiler.
_CASEWORKERS = _caseworkers()


async def put_person(
    session: AsyncSession, subject: str, *, email: str, delivery: str | None, actor: str
) -> MailPerson:
    """Insert or update; a delivery of None keeps the person's choice (immediate when new)."""
    stmt = pg_insert(MailPerson).values(
        subject=subject, email=email, delivery=delivery or "immediate", updated_by=actor
    )
    changes: dict[str, Any] = {"email": email, "updated_by": actor, "updated_at": func.now()}
    if delivery is not None:
        changes["delivery"] = delivery
    await session.execute(stmt.on_conflict_do_update(index_elements=[MailPerson.subject], set_=changes))
    person = await session.scalar(
        select(MailPerson).where(MailPerson.subject == subject).execution_options(populate_existing=True)
    )
    assert person is not None
    return person


async def get_person(session: AsyncSession, subject: str) -> MailPerson:
    person = await session.scalar(select(MailPerson).where(MailPerson.subject == subject))
    if person is None:
        raise not_found("person")
    return person


async def list_people(session: AsyncSession, *, limit: int, offset: int) -> tuple[Sequence[MailPerson], int]:
    total = await session.scalar(select(func.count()).select_from(MailPerson))
    rows = (await session.scalars(select(MailPerson).order_by(MailPerson.subject).limit(limit).offset(offset))).all()
    return rows, int(total or 0)


async def add_recipient(session: AsyncSession, *, district: str, level: str, address: str, actor: str) -> MailRecipient:
    row: MailRecipient | None = await session.scalar(
        pg_insert(MailRecipient)
        .values(id=uuid.uuid4(), district=district, level=level, address=address, created_by=actor)
        .on_conflict_do_nothing(constraint="uq_mail_recipient")
        .returning(MailRecipient)
    )
    if row is None:
        raise Problem(
            409,
            "mail-recipient-exists",
            "Mailbox already registered",
            "This address is already told of this district's alerts at this level.",
            field="body.address",
        )
    return row


async def list_recipients(session: AsyncSession, *, district: str | None, level: str | None) -> Sequence[MailRecipient]:
    stmt = select(MailRecipient)
    if district is not None:
        stmt = stmt.where(MailRecipient.district == district)
    if level is not None:
        stmt = stmt.where(MailRecipient.level == level)
    stmt = stmt.order_by(MailRecipient.district, MailRecipient.level, MailRecipient.address)
    return (await session.scalars(stmt)).all()


async def get_recipient(session: AsyncSession, recipient_id: uuid.UUID) -> MailRecipient:
    row = await session.scalar(select(MailRecipient).where(MailRecipient.id == recipient_id))
    if row is None:
        raise not_found("mail recipient")
    return row


async def delete_recipient(session: AsyncSession, recipient_id: uuid.UUID) -> None:
    # Mail already queued for the address is still sent: it was true when it was queued.
    await session.delete(await get_recipient(session, recipient_id))


async def list_deliveries(
    session: AsyncSession, *, status: str | None, alert_id: uuid.UUID | None, limit: int, offset: int
) -> tuple[Sequence[MailMessage], int]:
    stmt = select(MailMessage)
    if status is not None:
        stmt = stmt.where(MailMessage.status == status)
    if alert_id is not None:
        stmt = stmt.where(MailMessage.alert_id == alert_id)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = (
        await session.scalars(stmt.order_by(MailMessage.created_at.desc(), MailMessage.id).limit(limit).offset(offset))
    ).all()
    return rows, int(total or 0)
