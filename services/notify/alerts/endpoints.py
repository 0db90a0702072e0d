"""HTTP routes of /v1/alerts. Thin: the work lives in alerts/store.py."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request

from services.notify.alerts import schemas
from services.notify.alerts import store as service
from services.notify.context import Context
from services.notify.models import Alert
from services.notify.rules.config import check_rule_name
from services.notify.runtime import notify_runtime
from shared.contracts.alerts import RULE_NAMES, AlertStatus
from shared.kernel.db import SessionDep
from shared.kernel.errors import check_district
from shared.web.app import SettingsDep
from shared.web.auth import PrincipalDep
from shared.web.policy import AccessDep, v1_router
from shared.web.schemas import Limit, NameText, Offset

# Who may call what, and which alerts each caller sees: shared/web/policy.py. A webhook sends alert
# data to any URL, so only administrators manage them.
router = v1_router()


def _context(request: Request) -> Context:
    ctx: Context = notify_runtime(request.app).context
    return ctx


@router.get("/alerts", response_model=schemas.AlertPage, tags=["alerts"])
async def list_alerts(
    session: SessionDep,
    settings: SettingsDep,
    access: AccessDep,
    district: Annotated[NameText | None, Query()] = None,
    rule: Annotated[NameText | None, Query(description=f"One of: {', '.join(RULE_NAMES)}.")] = None,
    status: AlertStatus | None = None,
    placement_id: uuid.UUID | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.AlertPage:
    """Alerts, newest change first. A pre-warning has status `warning`."""
    if district is not None:
        check_district(settings.districts, district, "query.district")
    if rule is not None:
        check_rule_name(rule, "query.rule")
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
