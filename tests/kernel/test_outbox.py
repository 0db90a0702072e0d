"""The outbox under a broker outage: writes succeed, events arrive once the broker is back."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer

from shared.contracts.topics import TOPIC_PLACEMENT
from shared.local.embedded import EmbeddedBroker, free_port
from shared.local.migrate import _asyncpg_dsn
from shared.web.runtime import runtime
from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.support import eventually

DAY0 = date(2025, 9, 1)


async def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 20) -> list[dict]:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        got: list[dict] = []  # type: ignore[type-arg]
        import time

        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        # Read until the expected count is reached and then 2 quiet seconds pass, to see duplicates.
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            records = [r for rs in batch.values() for r in rs]
            if records:
                got.extend(json.loads(r.value) for r in records)
                quiet_since = time.monotonic()
            elif len(got) >= expect and time.monotonic() - quiet_since > 2:
                break
        return got
    finally:
        await consumer.stop()


@pytest.mark.slow
async def test_writes_succeed_while_the_broker_is_down_and_events_arrive_once_after(service_client, settings, tmp_path):
    broker = EmbeddedBroker("127.0.0.1", free_port(), log_file=tmp_path / "broker.log")
    broker.start()
    s = {"kafka_bootstrap_servers": broker.bootstrap, "kafka_request_timeout_ms": 2000}
    try:
        async with service_client("placement", settings_override=s) as client:
            relay = runtime(client.app).relay
            first_child = (await client.post("/v1/children", json=child_body(1))).json()["id"]
            assert (
                await client.post("/v1/placements", json=placement_body(first_child, start=DAY0))
            ).status_code == 201
            await eventually(lambda: _async(relay.published == 1))

            broker.stop()
            failures = relay.failures
            ids = []
            for n in range(2, 5):
                child = (await client.post("/v1/children", json=child_body(n))).json()["id"]
                resp = await client.post("/v1/placements", json=placement_body(child, start=DAY0 - timedelta(days=n)))
                assert resp.status_code == 201, resp.text
                ids.append(resp.json()["id"])
            # The embedded broker keeps topics in memory, so a restarted one has none. Wait
            # until the relay has given up on its old connection (it then re-creates the
            # topics before publishing again), as a production broker would have kept them.
            await eventually(lambda: _async(relay.failures > failures), timeout=30)
            metrics = (await client.get("/metrics")).text
            assert "obruten_outbox_backlog 3.0" in metrics
            # The instance still serves its API (this very write path), so it stays ready;
            # the outage shows where an operator looks, not as a pod taken out of service.
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok"}
            details = (await client.get("/healthz/details")).json()
            assert details["broker"] == "down" and details["status"] == "degraded"
            assert details["relay"]["backlog"] == 3
            assert "obruten_broker_up 0.0" in (await client.get("/metrics")).text

            broker.start()
            await eventually(lambda: _async(relay.published == 4), timeout=60)
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/healthz/details")).json()["broker"] == "ok"
        # The restarted broker keeps topics in memory only, so it holds exactly what was
        # published after it came back: the three events written during the outage.
        events = await read_all(broker.bootstrap, settings.topic(TOPIC_PLACEMENT), expect=3)
    finally:
        broker.stop()
    placement_ids = [e["data"]["placement_id"] for e in events]
    assert sorted(placement_ids) == sorted(ids), "each event exactly once"


async def _async(value: bool) -> bool:
    return value


async def test_a_relay_that_finds_another_publishing_tries_again_soon_not_after_the_poll_interval(
    service_client, settings
):
    # The poll interval is an hour: an event that leaves within seconds left on the commit's
    # wake-up, or on the relay's retry once the other replica (here a session holding the
    # publishing lock) let go.
    quiet = {"outbox_poll_interval_seconds": 3600}
    async with service_client("placement", settings_override=quiet) as client:
        relay = runtime(client.app).relay
        first, second = [(await client.post("/v1/children", json=child_body(n))).json()["id"] for n in (1, 2)]
        assert (await client.post("/v1/placements", json=placement_body(first, start=DAY0))).status_code == 201
        await eventually(lambda: _async(relay.published == 1), timeout=20)
        url = settings.service_database_url("placement")
        conn = await asyncpg.connect(**_asyncpg_dsn(url))  # type: ignore[arg-type]
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", relay.lock_key)
                resp = await client.post("/v1/placements", json=placement_body(second, start=DAY0))
                assert resp.status_code == 201, resp.text
                await eventually(lambda: _async(relay.lock_busy), timeout=10)
                await asyncio.sleep(0.5)
                assert relay.published == 1  # held back while the lock is taken
        finally:
            await conn.close()
        await eventually(lambda: _async(relay.published == 2), timeout=10)
