"""`POST /v1/placements` reaches PostgreSQL in two statements (services/placement/writes.py): the
child's read, and one statement that locks it and writes the placement, its event and the audit
row together. What those two statements guarantee is tested where the rules are (test_placement.py,
test_contention.py, tests/kernel/test_audit.py); this pins the shape."""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import event

from shared.local.migrate import _asyncpg_dsn
from shared.web.runtime import runtime
from tests.fixtures.factories import child_body, placement_body


async def test_a_placement_is_written_in_one_statement_after_the_childs_read(
    service_client: Any, clock: Any, settings: Any
) -> None:
    async with service_client("placement") as client:
        child = (await client.post("/v1/children", json=child_body(1))).json()["id"]
        seen: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            # The outbox relay, woken by the commit, shares the engine; its statements are its own.
            if not any(relay in statement for relay in ("pg_try_advisory_xact_lock", "outbox.seq", "UPDATE outbox")):
                seen.append(statement)

        engine = runtime(client.app).engine.sync_engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            placed = await client.post("/v1/placements", json=placement_body(child, start=clock.today()))
        finally:
            event.remove(engine, "before_cursor_execute", record)
        assert placed.status_code == 201, placed.text
    assert len(seen) == 2, seen
    assert seen[0].startswith("SELECT") and "FROM child" in seen[0] and "FOR UPDATE" not in seen[0]
    write = seen[1]
    assert "FROM child" in write and "FOR UPDATE" in write
    for table in ("placement", "outbox", "audit"):
        assert f"INSERT INTO {table} " in write, table
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("placement")))  # type: ignore[arg-type]
    try:
        pid = placed.json()["id"]
        row = await conn.fetchrow("SELECT created_at, updated_at FROM placement WHERE id = $1", pid)
        assert row["created_at"].isoformat() == placed.json()["created_at"].replace("Z", "+00:00")
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE payload->'data'->>'placement_id' = $1", pid) == 1
        audit = await conn.fetchrow("SELECT status, outcome FROM audit WHERE resource_id = $1", pid)
        assert (audit["status"], audit["outcome"]) == (201, "allowed")
    finally:
        await conn.close()
