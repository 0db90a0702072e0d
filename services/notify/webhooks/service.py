"""Webhook subscriptions: where they may point, creating, listing and deleting them, and their
delivery log."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.models import (
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from services.notify.webhooks import signing
from shared.kernel.errors import not_found

log = logging.getLogger("obruten.notify")


async def create_webhook(
    session: AsyncSession, *, url: str, secret: str, districts: list[str] | None, rules: list[str] | None, actor: str
) -> Webhook:
    hook = Webhook(
        id=uuid.uuid4(),
        url=url,
        secret=signing.normalise_secret(secret),
        districts=districts,
        rules=rules,
        created_by=actor,
    )
    session.add(hook)
    await session.flush()
    return hook


async def list_webhooks(session: AsyncSession) -> Sequence[Webhook]:
    return (
        await session.scalars(select(Webhook).where(Webhook.deleted_at.is_(None)).order_by(Webhook.created_at))
    ).all()


async def get_webhook(session: AsyncSession, webhook_id: uuid.UUID) -> Webhook:
    hook = await session.scalar(select(Webhook).where(Webhook.id == webhook_id, Webhook.deleted_at.is_(None)))
    if hook is None:
        raise not_found("webhook")
    return hook


async def delete_webhook(session: AsyncSession, webhook_id: uuid.UUID, *, now: datetime) -> None:
    hook = await get_webhook(session, webhook_id)
    hook.deleted_at = now
    # Kept (soft-deleted) so its delivery log stays for audit; what was still pending is not sent.
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.status == "pending")
        .values(status="cancelled")
    )


async def list_deliveries(
    session: AsyncSession, webhook_id: uuid.UUID, *, status: str | None, limit: int, offset: int
) -> tuple[list[tuple[WebhookDelivery, list[WebhookAttempt]]], int]:
    await get_webhook(session, webhook_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if status is not None:
        stmt = stmt.where(WebhookDelivery.status == status)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    deliveries = (
        await session.scalars(
            stmt.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit).offset(offset)
        )
    ).all()
    attempts: dict[uuid.UUID, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        for attempt in await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(attempts)))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return [(d, attempts[d.id]) for d in deliveries], int(total or 0)
