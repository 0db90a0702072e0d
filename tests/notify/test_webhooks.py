"""Webhooks that cannot be replayed (issue 16): Standard Webhooks signatures verified by the
`standardwebhooks` package, a replay with an old timestamp refused, secret rotation with an
overlap, and the payloads documented as OpenAPI 3.1 `webhooks`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.notify.webhooks import signing
from tests.fixtures.notify import Bus, Receiver
from tests.fixtures.support import eventually
from tests.notify.test_webhook_destinations import DAY0, FAST, QUIET, Case, _some, assert_422, open_alert


async def test_standard_webhooks_signature_verifies_and_a_replay_is_refused(service_client, settings, clock) -> None:
    case = Case(DAY0)
    async with (
        Receiver() as receiver,
        Bus(settings) as bus,
        service_client("notify", settings_override=FAST) as notify,
    ):
        created = await notify.post("/v1/webhooks", json={"url": receiver.url})
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        assert secret.startswith("whsec_")
        listed = (await notify.get(f"/v1/webhooks/{created.json()['id']}")).json()
        assert "secret" not in listed, "shown once, at creation"
        await open_alert(bus, notify, clock, case)
        await eventually(lambda: _some(receiver), timeout=15)
    [(headers, body)] = receiver.requests
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "obruten.alert.opened" and event["data"]["placement_id"] == str(case.placement_id)
    sent_at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    assert abs((datetime.now(UTC) - sent_at).total_seconds()) < 60
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.generate_secret()).verify(body, headers)  # another secret
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"opened", b"resolved"), headers)  # a changed body
    # The same delivery captured ten minutes ago and replayed now, exactly as notify signed it then:
    old = signing.headers(headers["webhook-id"], body.decode(), [secret], datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, old)
    # ... and its old signature under a fresh timestamp matches nothing.
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(secret).verify(body, {**old, "webhook-timestamp": str(int(datetime.now(UTC).timestamp()))})


async def test_a_rotated_secret_overlaps_with_the_previous_one(service_client, settings, clock) -> None:
    case = Case(DAY0)
    async with (
        Receiver() as receiver,
        Bus(settings) as bus,
        service_client("notify", settings_override=FAST) as notify,
    ):
        created = (await notify.post("/v1/webhooks", json={"url": receiver.url})).json()
        rotated = await notify.post(f"/v1/webhooks/{created['id']}/secret", json={})
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new != created["secret"] and rotated.json()["previous_secret_expires_at"]
        bad = await notify.post(f"/v1/webhooks/{created['id']}/secret", json={"secret": "\x00" * 20})
        assert_422(bad, "body.secret")
        await open_alert(bus, notify, clock, case)
        await eventually(lambda: _some(receiver), timeout=15)
    [(headers, body)] = receiver.requests
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(body, headers)
    Webhook(created["secret"]).verify(body, headers)  # a receiver not yet switched still accepts


async def test_the_payloads_are_documented_as_openapi_webhooks(service_client) -> None:
    async with service_client("notify", settings_override=QUIET) as notify:
        doc = (await notify.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["webhooks"]) == {
        # `changed` (issue 14: a move, a transfer, corrected dates) is announced to subscribers too.
        f"obruten.alert.{t}"
        for t in ("prewarned", "opened", "escalated", "acknowledged", "resolved", "changed")
    }
    operation = doc["webhooks"]["obruten.alert.opened"]["post"]
    assert {p["name"] for p in operation["parameters"] if p["in"] == "header"} == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    assert "requestBody" in operation and "verify" in operation["description"]
