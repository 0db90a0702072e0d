"""OBRUTEN_OUTBOX_RELAY_IN_PROCESS=false: the service writes its outbox and publishes nothing;
`obruten relay <service>` (shared/local/relay.py) publishes it, woken by the outbox's NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import date

import asyncpg

from shared.bus.outbox import OUTBOX_CHANNEL
from shared.contracts.topics import TOPIC_PLACEMENT
from shared.local.migrate import _asyncpg_dsn
from shared.local.relay import run_relay
from shared.web.runtime import runtime
from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.support import TopicTail, eventually

UNSENT = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"


async def test_a_relay_of_its_own_publishes_what_the_service_only_wrote(service_client, settings) -> None:
    separate = {"outbox_relay_in_process": False, "outbox_poll_interval_seconds": 3600}
    async with (
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_PLACEMENT)) as tail,
        service_client("placement", settings_override=separate) as client,
    ):
        assert runtime(client.app).relay is None, "the serving process runs no relay"
        child = (await client.post("/v1/children", json=child_body(1))).json()["id"]
        placed = await client.post("/v1/placements", json=placement_body(child, start=date(2025, 8, 25)))
        assert placed.status_code == 201, placed.text
        conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("placement")))  # type: ignore[arg-type]
        try:
            assert await conn.fetchval(UNSENT) == 1, "the placement's event waits in the outbox"
            stop = asyncio.Event()
            relaying = asyncio.create_task(run_relay(settings.model_copy(update=separate), "placement", stop))
            try:
                [event] = [json.loads(m.value) for m in await tail.collect(1)]
                assert event["type"] == "obruten.placement.started"
                assert event["data"]["placement_id"] == placed.json()["id"]

                async def drained() -> bool:
                    return await conn.fetchval(UNSENT) == 0

                await eventually(drained)
                # A later write is published at once: the relay is woken by the outbox's NOTIFY,
                # not by the poll interval (an hour here).
                second = (await client.post("/v1/children", json=child_body(2))).json()["id"]
                await client.post("/v1/placements", json=placement_body(second, start=date(2025, 8, 25)))
                assert len(await tail.collect(2, timeout=10)) == 2
            finally:
                stop.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await relaying
        finally:
            await conn.close()


async def test_a_service_that_relays_its_own_outbox_commits_without_a_notify(service_client, settings) -> None:
    """Its relay is woken by its commits in process; a NOTIFY would serialise its commits."""
    heard: list[str] = []
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("placement")))  # type: ignore[arg-type]
    try:
        async with service_client("placement") as client:
            await conn.add_listener(OUTBOX_CHANNEL, lambda *args: heard.append(args[-1]))
            child = (await client.post("/v1/children", json=child_body(1))).json()["id"]
            placed = await client.post("/v1/placements", json=placement_body(child, start=date(2025, 8, 25)))
            assert placed.status_code == 201, placed.text

            async def published() -> bool:
                return await conn.fetchval(UNSENT) == 0

            await eventually(published)
            # A round trip on the listening connection: a notification sent at the write's commit
            # (before the relay could publish it) has been read by now.
            await conn.fetchval("SELECT 1")
            assert heard == []
        # The trigger itself is in place: a row written by another process does notify (the row is
        # taken back in the same transaction, so there is nothing to publish).
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) "
                "VALUES (gen_random_uuid(), 'obruten.placement', 'x', 'obruten.test', '{}'::jsonb)"
            )
            await conn.execute("DELETE FROM outbox WHERE type = 'obruten.test'")
        await eventually(lambda: _async(bool(heard)))
    finally:
        await conn.close()


async def _async(value: bool) -> bool:
    return value
