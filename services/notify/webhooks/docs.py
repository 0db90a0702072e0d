"""What notify POSTs to a webhook, as OpenAPI 3.1 `webhooks` in notify's own OpenAPI document.

Receivers generate their handler from it: one operation per alert event type, each a CloudEvent
(structured JSON) whose `data` is the alert after the transition, with the three Standard
Webhooks headers a receiver must check (README, "Webhooks").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header
from pydantic import BaseModel, Field

from shared.contracts.alerts import TRANSITION_EVENTS, AlertChanged

RECEIVER_MUST = (
    "Verify before trusting anything: `standardwebhooks.Webhook(secret).verify(raw_body, headers)` (or any "
    "Standard Webhooks library) checks `webhook-signature` (`v1,` + base64 HMAC-SHA256 over "
    "`webhook-id.webhook-timestamp.body` with the `whsec_` secret; during a secret rotation two signatures are "
    "sent, space-separated, and either may match) and refuses a `webhook-timestamp` more than five minutes "
    "from the receiver's clock, so a captured delivery cannot be replayed later. Then de-duplicate on "
    "`webhook-id`: a delivery is retried (same id, same body, new timestamp and signature) until it is "
    "answered 2xx. Answer 2xx quickly; anything else, or no answer within the timeout, is retried with backoff."
)


class AlertWebhookEvent(BaseModel):
    """The body of a webhook delivery: a CloudEvents 1.0 envelope."""

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(description="The event's id: the same as on the `obruten.alerts` topic.")
    source: Literal["/obruten/notify"] = "/obruten/notify"
    type: str = Field(description="obruten.alert.prewarned, .opened, .escalated, .acknowledged or .resolved.")
    subject: str = Field(description="The child's pseudonymous id.")
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    data: AlertChanged


def document(app: FastAPI) -> None:
    for transition, etype in TRANSITION_EVENTS.items():
        _declare(app, transition, etype.type, etype.description)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            # The receiver's answer is its own: only the status matters to notify.
            for item in schema.get("webhooks", {}).values():
                for operation in item.values():
                    operation["responses"] = {
                        "2XX": {"description": "Received. Anything else is retried with backoff, then dead-lettered."}
                    }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _declare(app: FastAPI, transition: str, event_type: str, description: str) -> None:
    async def receiver(
        body: AlertWebhookEvent,
        webhook_id: Annotated[str, Header(alias="webhook-id", description="The delivery's id; de-duplicate on it.")],
        webhook_timestamp: Annotated[
            str, Header(alias="webhook-timestamp", description="Unix seconds of this attempt; refuse if not recent.")
        ],
        webhook_signature: Annotated[
            str, Header(alias="webhook-signature", description="`v1,<base64>` (space-separated when two).")
        ],
    ) -> None:
        """(Implemented by the receiver.)"""

    receiver.__name__ = f"alert_{transition}"
    app.webhooks.post(
        event_type, summary=description, description=f"{description}\n\n{RECEIVER_MUST}", tags=["webhooks"]
    )(receiver)
