"""Webhook destinations that cannot reach inside (issue 12, findings 7 and 8): resolved and
checked at registration and again at every delivery, connected to by the checked address, and
one destination's failure, of whatever kind, its own.

Imports only what notify had before these fixes, so the file runs against the old code too
(where its tests fail)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from services.notify.app import evaluate
from services.notify.models import Webhook as WebhookRow
from services.notify.models import WebhookDelivery
from services.notify.runtime import notify_runtime
from shared.web.runtime import runtime
from tests.fixtures.notify import Bus, Case, Receiver, consumed, public_dns
from tests.fixtures.support import eventually

DAY0 = date(2025, 9, 1)
QUIET = {"notify_tick_interval_seconds": 3600, "notify_rules": {"school_gap": {"prewarning_day": None}}}
FAST = {
    **QUIET,
    "notify_webhook_backoff_initial_seconds": 0.05,
    "notify_webhook_backoff_max_seconds": 0.1,
    "notify_webhook_poll_interval_seconds": 0.05,
    "notify_webhook_max_attempts": 3,
}
PRIVATE_OFF = {"notify_webhook_allow_private": False}


def assert_422(resp, field: str) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["field"] == field, resp.json()


async def open_alert(bus: Bus, notify, clock, case: Case) -> None:  # type: ignore[no-untyped-def]
    await bus.placement(case)
    await consumed(1, notify)
    clock.set_today(DAY0 + timedelta(days=8))
    assert await evaluate(notify.app) == 1


async def insert_legacy_hook(notify, url: str) -> uuid.UUID:  # type: ignore[no-untyped-def]
    """A subscription stored before today's checks existed (or by any other path): delivery
    must check it again."""
    hook_id = uuid.uuid4()
    async with runtime(notify.app).sessionmaker() as session, session.begin():
        session.add(WebhookRow(id=hook_id, url=url, secret="s" * 20, created_by="legacy"))
    return hook_id


async def deliveries(notify, hook_id: uuid.UUID) -> list[WebhookDelivery]:  # type: ignore[no-untyped-def]
    async with runtime(notify.app).sessionmaker() as session:
        return list(await session.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook_id)))


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/hook",  # 127.0.0.1 as an integer
        "http://0x7f000001/hook",  # hex
        "http://017700000001/hook",  # octal
        "http://127.1/hook",  # short form
        "http://0/hook",  # 0.0.0.0
        "http://vm/hook",  # a name from /etc/hosts (127.0.0.1)
        "http://runsc:8001/v1/placements",
        "http://metadata.google.internal/computeMetadata/v1/",  # 169.254.169.254 where it exists
        "http://100.100.100.200/latest/meta-data/",  # shared address space (a cloud's metadata)
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
        "http://[::ffff:a00:5]/hook",  # 10.0.0.5, mapped
        "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
        "http://[2002:c0a8:101::1]/hook",  # 6to4 of 192.168.1.1
        "http://rebound.example.org/hook",  # a public name that resolves to loopback
        "http://nowhere.example.org/hook",  # does not resolve
        "http://example.com:abc/x",  # a port that is not a number
        "http://example.com:0/x",
        "http://example.com:70000/x",
        "https://hooks.example.org/\x00",
        "https://hooks.example.org/\r\nX-Injected: 1",
    ],
)
async def test_registration_refuses_every_spelling_of_an_inside_address(service_client, url: str) -> None:
    async with service_client("notify", settings_override={**QUIET, **PRIVATE_OFF}) as notify:
        notify_runtime(notify.app).webhook_resolver = public_dns(
            {
                "metadata.google.internal": "169.254.169.254",
                "rebound.example.org": "127.0.0.1",
                "hooks.example.org": "93.184.215.14",
                "example.com": "93.184.215.14",
            }
        )
        assert_422(await notify.post("/v1/webhooks", json={"url": url, "secret": "x" * 20}), "body.url")
        ok = await notify.post("/v1/webhooks", json={"url": "https://hooks.example.org/a", "secret": "x" * 20})
        assert ok.status_code == 201, ok.text


async def test_control_characters_in_the_secret_are_a_422(service_client) -> None:
    async with service_client("notify", settings_override=QUIET) as notify:
        for secret in ("x" * 20 + "\x00", "x" * 20 + "\n", "whsec_not base64!!!!!!!!!!", "whsec_" + "QUJD"):
            resp = await notify.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "secret": secret})
            assert_422(resp, "body.secret")


async def test_delivery_checks_the_address_again_and_never_posts_inside(service_client, settings, clock) -> None:
    """A subscription that points inside (stored before the registration check, or a name that
    resolved to a public address when registered and to loopback now): no request reaches
    the receiver; every attempt is refused and the delivery dead-lettered."""
    case = Case(DAY0)
    async with (
        Receiver() as inside,
        Bus(settings) as bus,
        service_client("notify", settings_override={**FAST, **PRIVATE_OFF}) as notify,
    ):
        port = inside.url.split(":")[2].split("/")[0]
        notify_runtime(notify.app).webhook_resolver = public_dns(
            {"rebinding.example.org": ["93.184.215.14", "127.0.0.1"]}
        )
        legacy = await insert_legacy_hook(notify, f"http://127.1:{port}/hook")
        created = await notify.post(
            "/v1/webhooks", json={"url": f"http://rebinding.example.org:{port}/hook", "secret": "x" * 20}
        )
        assert created.status_code == 201, "a public address when registered"
        rebinding = uuid.UUID(created.json()["id"])
        await open_alert(bus, notify, clock, case)

        async def all_dead() -> bool:
            rows = await deliveries(notify, legacy) + await deliveries(notify, rebinding)
            return len(rows) == 2 and all(d.status == "dead" for d in rows)

        await eventually(all_dead, timeout=20)
        for hook in (legacy, rebinding):
            [d] = await deliveries(notify, hook)
            assert d.attempts == 3 and d.last_error is not None and d.last_error.startswith("destination refused")
    assert inside.requests == []


async def test_the_request_goes_to_the_checked_address_with_the_name_as_host(service_client, settings, clock) -> None:
    """The name is resolved once per attempt, by notify, and the connection goes to that address:
    `pinned.example.org` exists only in notify's answer, so only the pinned connection reaches it."""
    case = Case(DAY0)
    async with (
        Receiver() as receiver,
        Bus(settings) as bus,
        service_client("notify", settings_override=FAST) as notify,
    ):
        port = receiver.url.split(":")[2].split("/")[0]
        notify_runtime(notify.app).webhook_resolver = public_dns({"pinned.example.org": "127.0.0.1"})
        created = await notify.post(
            "/v1/webhooks", json={"url": f"http://pinned.example.org:{port}/hook?x=1", "secret": "x" * 20}
        )
        assert created.status_code == 201, created.text
        await open_alert(bus, notify, clock, case)
        await eventually(lambda: _some(receiver), timeout=15)
    [(headers, _)] = receiver.requests
    assert headers["host"] == f"pinned.example.org:{port}"


async def _some(receiver: Receiver) -> bool:
    return bool(receiver.requests)


async def test_one_destination_that_cannot_be_sent_to_fails_alone(service_client, settings, clock) -> None:
    """Issue 12, finding 8: a URL that raises outside the HTTP errors (`http://example.com:abc/x`)
    is its own delivery's failure: retried, then dead-lettered; the good receivers of the same
    batch get the alert exactly once and are marked delivered."""
    case = Case(DAY0)
    async with (
        Receiver() as good,
        Receiver() as other,
        Bus(settings) as bus,
        service_client("notify", settings_override=FAST) as notify,
    ):
        bad = await insert_legacy_hook(notify, "http://example.com:abc/x")
        ids = []
        for r in (good, other):
            created = await notify.post("/v1/webhooks", json={"url": r.url, "secret": "x" * 20})
            assert created.status_code == 201
            ids.append(uuid.UUID(created.json()["id"]))
        await open_alert(bus, notify, clock, case)

        async def settled() -> bool:
            rows = [d for h in (bad, *ids) for d in await deliveries(notify, h)]
            return len(rows) == 3 and all(d.status in ("delivered", "dead") for d in rows)

        await eventually(settled, timeout=20)
        [dead] = await deliveries(notify, bad)
        assert dead.status == "dead" and dead.attempts == 3 and dead.dead_at is not None
        for hook in ids:
            [d] = await deliveries(notify, hook)
            assert (d.status, d.attempts) == ("delivered", 1)
        listed = (await notify.get(f"/v1/webhooks/{bad}/deliveries", params={"status": "dead"})).json()
        assert listed["total"] == 1
    assert len(good.requests) == 1 and len(other.requests) == 1
