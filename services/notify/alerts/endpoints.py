"""HTTP routes of the notify service. Thin: the work lives in service.py."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Query, Request, Response
from fastapi import status as http_status

from services.notify import service
from services.notify.alerts import schemas
from services.notify.models import Alert
from shared.contracts.alerts import RULE_NAMES, AlertStatus
from shared.kernel.clock import ClockDep
from shared.kernel.db import SessionDep
from shared.kernel.errors import check_district, invalid
from shared.web.app import SettingsDep, v1_router
from shared.web.auth import PrincipalDep
from shared.web.policy import AccessDep

# Who may call what, and which alerts each caller sees: shared/web/policy.py. A webhook sends alert
# data to any URL, so only administrators manage them.
router = v1_router()


def _context(request: Request) -> service.Context:
    ctx: service.Context = request.app.state.notify_context
    return ctx


def _check_rule(value: str, field: str) -> None:
    if value not in RULE_NAMES:
        raise invalid(field, f"unknown rule; expected one of: {', '.join(RULE_NAMES)}")


@router.get("/alerts", response_model=schemas.AlertPage, tags=["alerts"])
async def list_alerts(
    session: SessionDep,
    settings: SettingsDep,
    access: AccessDep,
    district: Annotated[str | None, Query(max_length=100)] = None,
    rule: Annotated[str | None, Query(description=f"One of: {', '.join(RULE_NAMES)}.")] = None,
    status: AlertStatus | None = None,
    placement_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> schemas.AlertPage:
    """Alerts, newest change first. A pre-warning has status `warning`."""
    if district is not None:
        check_district(settings.districts, district, "query.district")
    if rule is not None:
        _check_rule(rule, "query.rule")
    stmt = service.alert_query(
        district=district, rule=rule, status=status.value if status else None, placement_id=placement_id
    ).where(access.list_filter(district, Alert.district))
    items, total = await service.list_alerts(session, stmt, limit=limit, offset=offset)
    return schemas.AlertPage(
        items=[schemas.AlertOut.model_validate(a) for a in items], total=total, limit=limit, offset=offset
    )


@router.get("/alerts/{alert_id}", response_model=schemas.AlertDetail, tags=["alerts"])
async def get_alert(alert_id: uuid.UUID, session: SessionDep, access: AccessDep) -> schemas.AlertDetail:
    """An alert with every transition it went through."""
    alert = await service.get_alert(session, alert_id)
    access.check(alert.district, "alert")
    history = await service.alert_history(session, alert_id)
    return schemas.AlertDetail(
        **schemas.AlertOut.model_validate(alert).model_dump(),
        history=[schemas.AlertTransitionOut.model_validate(h) for h in history],
    )


@router.post("/alerts/{alert_id}/acknowledge", response_model=schemas.AlertDetail, tags=["alerts"])
async def acknowledge_alert(
    alert_id: uuid.UUID,
    body: schemas.Acknowledge,
    session: SessionDep,
    principal: PrincipalDep,
    request: Request,
    access: AccessDep,
) -> schemas.AlertDetail:
    """Say someone is on it. 409 when the alert is resolved, already acknowledged, or only a pre-warning."""
    access.check((await service.get_alert(session, alert_id)).district, "alert")
    alert = await service.acknowledge(session, _context(request), alert_id, actor=principal.subject, note=body.note)
    history = await service.alert_history(session, alert_id)
    return schemas.AlertDetail(
        **schemas.AlertOut.model_validate(alert).model_dump(),
        history=[schemas.AlertTransitionOut.model_validate(h) for h in history],
    )


@router.post(
    "/webhooks",
    status_code=http_status.HTTP_201_CREATED,
    response_model=schemas.WebhookOut,
    tags=["webhooks"],
)
async def create_webhook(
    body: schemas.WebhookCreate, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
) -> schemas.WebhookOut:
    """Subscribe a URL to alert events. Each POST carries `X-Obruten-Signature: sha256=<hex>`, the
    HMAC-SHA256 of the raw body with the secret; failed deliveries are retried with exponential
    backoff and jitter, then dead-lettered (see the deliveries)."""
    for i, d in enumerate(body.districts or []):
        check_district(settings.districts, d, f"body.districts.{i}")
    for i, rule in enumerate(body.rules or []):
        _check_rule(rule, f"body.rules.{i}")
    refusal = service.webhook_destination_refusal(body.url, settings)
    if refusal is not None:
        raise invalid("body.url", refusal)
    hook = await service.create_webhook(
        session,
        url=body.url,
        secret=body.secret,
        districts=body.districts,
        rules=body.rules,
        actor=principal.subject,
    )
    return schemas.WebhookOut.model_validate(hook)


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
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
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
