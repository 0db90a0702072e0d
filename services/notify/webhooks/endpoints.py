"""HTTP routes of /v1/webhooks. Thin: the work lives in webhooks/service.py."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Query, Request, Response
from fastapi import status as http_status
from fastapi.responses import JSONResponse

from services.notify.rules.config import check_rule_name
from services.notify.runtime import notify_runtime
from services.notify.settings import NotifySettingsDep
from services.notify.webhooks import destinations, schemas, service, signing
from shared.kernel.clock import ClockDep
from shared.kernel.db import SessionDep
from shared.kernel.errors import check_district, invalid
from shared.web.app import SettingsDep
from shared.web.auth import PrincipalDep
from shared.web.policy import v1_router
from shared.web.schemas import Limit, Offset

# Who may call what, and which alerts each caller sees: shared/web/policy.py. A webhook sends alert
# data to any URL, so only administrators manage them.
router = v1_router()


@router.post(
    "/webhooks",
    status_code=http_status.HTTP_201_CREATED,
    response_model=schemas.WebhookCreated,
    tags=["webhooks"],
)
async def create_webhook(
    body: schemas.WebhookCreate,
    session: SessionDep,
    settings: SettingsDep,
    ns: NotifySettingsDep,
    principal: PrincipalDep,
    request: Request,
) -> Response:
    """Subscribe a URL to alert events. Each POST is signed by the Standard Webhooks specification
    (headers `webhook-id`, `webhook-timestamp`, `webhook-signature`; the payloads are this
    document's `webhooks`); failed deliveries are retried with exponential backoff and jitter, then
    dead-lettered (see the deliveries). The host is resolved now and before every delivery, and
    refused unless every address it resolves to is globally routable."""
    for i, d in enumerate(body.districts or []):
        check_district(settings.districts, d, f"body.districts.{i}")
    for i, rule in enumerate(body.rules or []):
        check_rule_name(rule, f"body.rules.{i}")
    try:
        await destinations.check_registration(body.url, ns, notify_runtime(request.app).webhook_resolver)
    except destinations.DestinationRefused as exc:
        raise invalid("body.url", str(exc)) from None
    generated = signing.generate_secret() if body.secret is None else None
    hook = await service.create_webhook(
        session,
        url=body.url,
        secret=generated or str(body.secret),
        districts=body.districts,
        rules=body.rules,
        actor=principal.subject,
    )
    out = schemas.WebhookOut.model_validate(hook).model_dump(mode="json")
    if generated is not None:
        out["secret"] = generated  # shown this once; a given secret is never echoed
    return JSONResponse(out, status_code=http_status.HTTP_201_CREATED)


@router.get("/webhooks", response_model=list[schemas.WebhookOut], tags=["webhooks"])
async def list_webhooks(session: SessionDep) -> list[schemas.WebhookOut]:
    return [schemas.WebhookOut.model_validate(h) for h in await service.list_webhooks(session)]


@router.get("/webhooks/{webhook_id}", response_model=schemas.WebhookOut, tags=["webhooks"])
async def get_webhook(webhook_id: uuid.UUID, session: SessionDep) -> schemas.WebhookOut:
    return schemas.WebhookOut.model_validate(await service.get_webhook(session, webhook_id))


@router.delete("/webhooks/{webhook_id}", status_code=http_status.HTTP_204_NO_CONTENT, tags=["webhooks"])
async def delete_webhook(webhook_id: uuid.UUID, session: SessionDep, clock: ClockDep) -> Response:
    """Unsubscribe. Deliveries not yet made are cancelled; the log of those made is kept."""
    await service.delete_webhook(session, webhook_id, now=clock.now())
    return Response(status_code=http_status.HTTP_204_NO_CONTENT)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=schemas.WebhookDeliveryPage,
    tags=["webhooks"],
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    session: SessionDep,
    status: Annotated[
        Literal["pending", "delivered", "dead", "cancelled"] | None,
        Query(description="`dead`: the dead-letter list, deliveries that failed every attempt."),
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.WebhookDeliveryPage:
    """Every delivery with every attempt made (time, HTTP status or error, duration)."""
    rows, total = await service.list_deliveries(session, webhook_id, status=status, limit=limit, offset=offset)
    items = []
    for delivery, attempts in rows:
        out = schemas.WebhookDeliveryOut(
            id=delivery.id,
            alert_id=delivery.alert_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            status=delivery.status,
            attempts=delivery.attempts,
            next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
            dead_at=delivery.dead_at,
            last_error=delivery.last_error,
            attempt_log=[schemas.WebhookAttemptOut.model_validate(a) for a in attempts],
        )
        items.append(out)
    return schemas.WebhookDeliveryPage(items=items, total=total, limit=limit, offset=offset)
