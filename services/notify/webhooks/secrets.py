"""Rotating a webhook's signing secret with an overlap.

The new secret signs every delivery from now on; the previous one keeps signing beside it
(two signatures in `webhook-signature`) for OBRUTEN_NOTIFY_WEBHOOK_SECRET_OVERLAP_SECONDS, so the
receiver can switch keys whenever it likes within that time without refusing a delivery.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi import Response
from fastapi.responses import JSONResponse

from services.notify.settings import NotifySettingsDep
from services.notify.webhooks import schemas, service, signing
from shared.kernel.db import SessionDep
from shared.web.policy import v1_router

router = v1_router()


@router.post("/webhooks/{webhook_id}/secret", response_model=schemas.WebhookCreated, tags=["webhooks"])
async def rotate_secret(
    webhook_id: uuid.UUID, body: schemas.SecretRotate, session: SessionDep, ns: NotifySettingsDep
) -> Response:
    """Rotate the signing secret. The answer carries the new secret when notify made it."""
    hook = await service.get_webhook(session, webhook_id)
    generated = signing.generate_secret() if body.secret is None else None
    # The overlap runs on the wall clock, as the deliveries' timestamps do.
    hook.previous_secret = hook.secret
    hook.previous_secret_expires_at = datetime.now(UTC) + timedelta(
        seconds=ns.webhook_secret_overlap_seconds
    )
    hook.secret = signing.normalise_secret(generated or str(body.secret))
    await session.flush()
    out = schemas.WebhookOut.model_validate(hook).model_dump(mode="json")
    if generated is not None:
        out["secret"] = generated
    return JSONResponse(out)
