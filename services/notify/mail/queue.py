"""Who is told of an alert transition, queued in the transition's own transaction.

* pre-warning: the placement's named caseworker only;
* opened at a step of the ladder: the functional mailboxes of the alert's district at that step
  and every step below it (an alert that opens late has passed them), and at the first step
  (`district`) also the named caseworker;
* escalated to a step: that step's mailboxes;
* changed, reason `transferred` (the case passed to another district): the receiving district is
  told as if the alert opened there at the step it has reached (its mailboxes at every step up to
  it, and the new placement's caseworker); a move within the district or a date correction: no one;
* resolved: everyone who was told of this episode of the alert, and no one else;
* acknowledged: no one (the alert is still there; acknowledging says someone is on it).

An episode is one run of the alert's clock (`clock_start`): a resolved alert that opens again
after a school end is a new episode, told anew. Each (alert, episode, stage, address) is queued
once: `INSERT … ON CONFLICT DO NOTHING` on the unique key, whoever writes it and however often.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.mail.compose import message_id
from services.notify.mail.models import MailMessage, MailPerson, MailRecipient, PlacementCaseworker
from services.notify.models import Alert

log = logging.getLogger("obruten.notify.mail")

# Set by the evaluation (session.info) so that the ladder's step names are known here.
RULES_KEY = "notify_rules"


@dataclass(frozen=True)
class Addressee:
    address: str
    delivery: str  # immediate or digest


def _facts(alert: Alert, reason: str | None) -> dict[str, Any]:
    return {
        "alert_id": str(alert.id),
        "rule": alert.rule,
        "district": alert.district,
        "counted_days": alert.counted_days,
        "calendar_days": alert.calendar_days,
        "deadline": alert.deadline.isoformat(),
        "level": alert.level_name,
        "reason": reason,
    }


async def _caseworker(session: AsyncSession, placement_id: uuid.UUID) -> list[Addressee]:
    row = (
        await session.execute(
            select(MailPerson.email, MailPerson.delivery)
            .join(PlacementCaseworker, PlacementCaseworker.caseworker == MailPerson.subject)
            .where(PlacementCaseworker.placement_id == placement_id)
        )
    ).first()
    if row is None:
        return []
    return [Addressee(row.email, row.delivery)]


async def _mailboxes(session: AsyncSession, district: str, levels: list[str]) -> list[Addressee]:
    rows = await session.execute(
        select(MailRecipient.address)
        .where(MailRecipient.district == district, MailRecipient.level.in_(levels))
        .order_by(MailRecipient.address)
    )
    return [Addressee(r.address, "immediate") for r in rows]


def _ladder(session: AsyncSession, alert: Alert) -> list[str]:
    rules = session.info.get(RULES_KEY)
    if rules is None or alert.level is None:
        return [alert.level_name] if alert.level_name else []
    return [step.level for step in rules.escalation[: alert.level + 1]]


async def _told(session: AsyncSession, alert: Alert, episode: str) -> list[Addressee]:
    rows = await session.execute(
        select(MailMessage.recipient, MailMessage.delivery)
        .where(MailMessage.alert_id == alert.id, MailMessage.episode == episode, MailMessage.stage != "resolved")
        .distinct()
        .order_by(MailMessage.recipient)
    )
    return [Addressee(r.recipient, r.delivery) for r in rows]


async def on_transition(
    session: AsyncSession, alert: Alert, transition: str, *, reason: str | None, now: datetime
) -> int:
    """Queue the mails of one transition; returns how many were new."""
    episode = alert.clock_start.isoformat()
    batches: list[tuple[str, str, list[Addressee]]] = []  # (kind, stage, who)
    if transition == "prewarned":
        batches.append(("prewarning", "prewarning", await _caseworker(session, alert.placement_id)))
    elif transition in ("opened", "escalated") or (transition == "changed" and reason == "transferred"):
        ladder = _ladder(session, alert)
        steps = ladder if transition != "escalated" else ladder[-1:]
        for step in steps:
            who = await _mailboxes(session, alert.district, [step])
            if step == ladder[0]:
                who += await _caseworker(session, alert.placement_id)
            batches.append(("alert", step, who))
    elif transition == "resolved":
        batches.append(("resolved", "resolved", await _told(session, alert, episode)))
    rows, keys = [], set()
    for kind, stage, who in batches:
        for a in who:
            key = f"alert:{alert.id}:{episode}:{stage}:{a.address.lower()}"
            if key in keys:
                continue  # a caseworker whose address is also the step's mailbox: one mail
            keys.add(key)
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "dedupe_key": key,
                    "message_id": message_id(key),
                    "kind": kind,
                    "alert_id": alert.id,
                    "episode": episode,
                    "stage": stage,
                    "district": alert.district,
                    "recipient": a.address,
                    "delivery": a.delivery,
                    "status": "held" if a.delivery == "digest" else "pending",
                    "facts": _facts(alert, reason),
                    "happened_at": now,
                }
            )
    if not rows:
        return 0
    inserted = await session.execute(
        pg_insert(MailMessage).values(rows).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(
            MailMessage.id
        )
    )
    count = len(inserted.all())
    if count:
        session.info["mail_written"] = True
    return count
