"""A dead database connection costs no 503 when the request can run again (shared/kernel/db.py):
the pool has no pre-ping; a pooled connection whose socket the server closed is replaced at
checkout, and a request whose connection died before its COMMIT is run again on a fresh one."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.exc import DBAPIError

from shared.kernel.settings import Settings
from shared.local.migrate import prepare_database
from shared.web.runtime import runtime
from tests.end_to_end.test_faults import PrivatePostgres
from tests.fixtures.factories import child_body, placement_body


async def test_after_a_postgres_restart_pooled_connections_are_replaced_and_nothing_answers_503(
    service_client: Any, tmp_path: Any
) -> None:
    pg = PrivatePostgres(tmp_path / "pg")
    try:
        db_settings = Settings(database_url=pg.server.url(), database_prefix="reconnect_")
        await prepare_database("placement", db_settings.service_database_url("placement"))
        override = {
            "database_url": pg.server.url(),
            "database_prefix": "reconnect_",
            "rate_limit_writes": "1000000/minute",
            "database_pool_size": 4,
            # The relay stays off the database while it restarts (it is woken by commits): a
            # statement of its own failing there would recycle the whole pool and hide the check.
            "outbox_poll_interval_seconds": 600,
        }
        async with service_client("placement", settings_override=override) as client:
            # Several connections in the pool, all of them idle when the server goes.
            warm = await asyncio.gather(*(client.post("/v1/children", json=child_body(n)) for n in range(8)))
            assert all(r.status_code == 201 for r in warm), [r.text for r in warm]
            await asyncio.to_thread(pg.stop)
            await asyncio.to_thread(pg.start)

            # Straight from the engine (no request to run again): every connection checked out works.
            engine = runtime(client.app).engine
            async with contextlib.AsyncExitStack() as stack:
                for _ in range(4):
                    conn = await stack.enter_async_context(engine.connect())
                    assert (await conn.execute(select(1))).scalar() == 1

            answers = await asyncio.gather(*(client.post("/v1/children", json=child_body(20 + n)) for n in range(8)))
            assert [r.status_code for r in answers] == [201] * 8, [r.text for r in answers]
            listed = await client.get("/v1/children/" + answers[0].json()["id"])
            assert listed.status_code == 200, listed.text
    finally:
        pg.server.stop()


async def test_a_connection_lost_before_commit_reruns_the_request(service_client: Any, clock: Any) -> None:
    """A disconnect raised into statements (what asyncpg reports for a connection that died
    unnoticed): one before anything was committed is run again, for a write (201) and a read
    (200); one under the statement that commits (the placement's write runs in autocommit) is not,
    since its outcome is unknown (503); one that keeps happening is a 503 problem."""
    async with service_client("placement") as client:
        engine = runtime(client.app).engine.sync_engine
        losses: dict[str, Any] = {"left": 0, "match": ""}

        class Lost(Exception):
            pass

        def lose(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.startswith(losses["match"]) and losses["left"] > 0:
                losses["left"] -= 1
                raise DBAPIError(statement, None, Lost("connection is closed"), connection_invalidated=True)

        event.listen(engine, "before_cursor_execute", lose)
        try:
            child = (await client.post("/v1/children", json=child_body(1))).json()["id"]
            losses.update(left=2, match="SELECT child.")
            placed = await client.post("/v1/placements", json=placement_body(child, start=clock.today()))
            assert placed.status_code == 201, placed.text
            assert losses["left"] == 0, "lost twice, answered by a later attempt"
            assert "x-obruten-contention" not in placed.headers

            losses.update(left=1, match="SELECT placement.")
            listed = await client.get("/v1/placements", params={"child_id": child})
            assert listed.status_code == 200 and listed.json()["total"] == 1, listed.text
            assert losses["left"] == 0

            other = (await client.post("/v1/children", json=child_body(2))).json()["id"]
            losses.update(left=1, match="WITH g AS")
            unknown = await client.post("/v1/placements", json=placement_body(other, start=clock.today()))
            assert unknown.status_code == 503, "not run again: the lost statement was the commit"
            assert unknown.headers["content-type"].startswith("application/problem+json")

            losses.update(left=100, match="SELECT child.")
            down = await client.post("/v1/placements", json=placement_body(other, start=clock.today()))
            assert down.status_code == 503, down.text
            assert down.headers["content-type"].startswith("application/problem+json")
            assert "x-obruten-contention" not in down.headers and losses["left"] == 96, "four attempts"
        finally:
            event.remove(engine, "before_cursor_execute", lose)
        assert (await client.get("/v1/placements", params={"child_id": other})).json()["total"] == 0
