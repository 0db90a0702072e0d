"""HTTP routes of notify's mail: the people directory, functional mailboxes, the mail queue.

Every call is audited like any /v1 call (shared/audit.py). A person reads and sets their own
entry (the token's subject); an administrator any, and alone manages mailboxes and reads the
queue (shared/policy.py).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Path, Query, Request, Response
from fastapi import status as http_status

from services.notify.mail import directory
from services.notify.mail import schemas as s
from services.notify.mail.sender import words
from services.notify.runtime import notify_runtime
from shared.kernel.db import SessionDep
from shared.kernel.errors import Problem, check_district, invalid
from shared.web.app import SettingsDep
from shared.web.auth import Principal, PrincipalDep, Role
from shared.web.policy import v1_router
from shared.web.schemas import Limit, NameText, Offset, ShortText

router = v1_router()

Subject = Annotated[ShortText, Path(min_length=1, description="The person's token subject.")]


def _own_or_admin(principal: Principal, subject: str) -> None:
    if principal.subject != subject and not principal.has(Role.admin):
        raise Problem(403, "forbidden", "Forbidden", "A person may read and set only their own mail settings.")


@router.put("/people/{subject}", response_model=s.PersonOut, tags=["mail"])
async def put_person(
    subject: Subject, body: s.PersonIn, session: SessionDep, principal: PrincipalDep
) -> s.PersonOut:
    """Set where a person is mailed and whether immediately or in a daily digest. The web
    service does this at each sign-in from the `email` claim; a person may change their own,
    an administrator anyone's."""
    _own_or_admin(principal, subject)
    person = await directory.put_person(
        session, subject, email=str(body.email), delivery=body.delivery, actor=principal.subject
    )
    return s.PersonOut.model_validate(person)


@router.get("/people/{subject}", response_model=s.PersonOut, tags=["mail"])
async def get_person(subject: Subject, session: SessionDep, principal: PrincipalDep) -> s.PersonOut:
    _own_or_admin(principal, subject)
    return s.PersonOut.model_validate(await directory.get_person(session, subject))


@router.get("/people", response_model=s.PersonPage, tags=["mail"])
async def list_people(session: SessionDep, limit: Limit = 100, offset: Offset = 0) -> s.PersonPage:
    """The directory (administrators)."""
    rows, total = await directory.list_people(session, limit=limit, offset=offset)
    return s.PersonPage(items=[s.PersonOut.model_validate(p) for p in rows], total=total, limit=limit, offset=offset)


def _levels(request: Request) -> list[str]:
    return [step.level for step in notify_runtime(request.app).context.rules.escalation]


@router.post(
    "/mail-recipients", status_code=http_status.HTTP_201_CREATED, response_model=s.MailRecipientOut, tags=["mail"]
)
async def add_mail_recipient(
    body: s.MailRecipientIn, request: Request, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
) -> s.MailRecipientOut:
    """A functional mailbox told when an alert of the district reaches the level."""
    check_district(settings.districts, body.district, "body.district")
    levels = _levels(request)
    if body.level not in levels:
        raise invalid("body.level", f"not a step of the escalation ladder; expected one of: {', '.join(levels)}")
    row = await directory.add_recipient(
        session, district=body.district, level=body.level, address=str(body.address), actor=principal.subject
    )
    return s.MailRecipientOut.model_validate(row)


@router.get("/mail-recipients", response_model=list[s.MailRecipientOut], tags=["mail"])
async def list_mail_recipients(
    session: SessionDep,
    settings: SettingsDep,
    district: Annotated[NameText | None, Query()] = None,
    level: Annotated[NameText | None, Query()] = None,
) -> list[s.MailRecipientOut]:
    if district is not None:
        check_district(settings.districts, district, "query.district")
    rows = await directory.list_recipients(session, district=district, level=level)
    return [s.MailRecipientOut.model_validate(r) for r in rows]


@router.get("/mail-recipients/{recipient_id}", response_model=s.MailRecipientOut, tags=["mail"])
async def get_mail_recipient(recipient_id: uuid.UUID, session: SessionDep) -> s.MailRecipientOut:
    return s.MailRecipientOut.model_validate(await directory.get_recipient(session, recipient_id))


@router.delete("/mail-recipients/{recipient_id}", status_code=http_status.HTTP_204_NO_CONTENT, tags=["mail"])
async def delete_mail_recipient(recipient_id: uuid.UUID, session: SessionDep) -> Response:
    await directory.delete_recipient(session, recipient_id)
    return Response(status_code=http_status.HTTP_204_NO_CONTENT)


@router.get("/mail-deliveries", response_model=s.MailDeliveryPage, tags=["mail"])
async def list_mail_deliveries(
    session: SessionDep,
    settings: SettingsDep,
    status: Annotated[
        Literal["pending", "held", "digested", "sent", "dead"] | None,
        Query(description="`dead`: the dead-letter list, mail that failed every attempt."),
    ] = None,
    alert_id: uuid.UUID | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> s.MailDeliveryPage:
    """The mail queue, newest first: what was sent to whom, what waits, what was dead-lettered."""
    rows, total = await directory.list_deliveries(session, status=status, alert_id=alert_id, limit=limit, offset=offset)
    items = [
        s.MailDeliveryOut(
            id=m.id,
            kind=m.kind,
            alert_id=m.alert_id,
            stage=m.stage,
            district=m.district,
            recipient=m.recipient,
            delivery=m.delivery,  # type: ignore[arg-type]
            status=m.status,  # type: ignore[arg-type]
            subject=words(m.kind, m.stage, m.facts, settings.web_url).subject,
            message_id=m.message_id,
            attempts=m.attempts,
            next_attempt_at=m.next_attempt_at if m.status == "pending" else None,
            created_at=m.created_at,
            sent_at=m.sent_at,
            dead_at=m.dead_at,
            last_error=m.last_error,
        )
        for m in rows
    ]
    return s.MailDeliveryPage(items=items, total=total, limit=limit, offset=offset)
