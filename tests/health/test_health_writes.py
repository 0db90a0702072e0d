"""The examination writes reach PostgreSQL as services/health/writes.py says: an unlocked read,
then one statement that locks the placement (and the examination), re-checks them and writes the
record, its history row, its event and the audit row. A change that lands between the read and
the write makes the request run again, never write against what it read; the rules themselves
are tested in test_health.py."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event

from services.health import writes
from shared.kernel.settings import Settings
from shared.local.migrate import _asyncpg_dsn
from shared.web.runtime import runtime

DAY0 = date(2025, 9, 1)  # the clock fixture's today
PLACED = DAY0 - timedelta(days=30)


async def _sql(settings: Settings, query: str, *args: Any) -> Any:
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("health")))  # type: ignore[arg-type]
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def _placement_arrived(settings: Settings) -> uuid.UUID:
    """A placement in health's copy, as the consumer stores one from the bus."""
    placement_id = uuid.uuid4()
    await _sql(
        settings,
        "INSERT INTO placement_view (placement_id, child_id, version, district, form, start_date, school_change,"
        " child_birth_date, protected_identity) VALUES ($1, $2, 1, 'Farsta', 'familjehem', $3, false, $4, false)",
        placement_id,
        uuid.uuid4(),
        PLACED,
        date(2013, 4, 2),
    )
    return placement_id


def _booking(placement_id: uuid.UUID, day: date = DAY0) -> dict[str, Any]:
    return {"placement_id": str(placement_id), "kind": "health", "status": "booked", "date": day.isoformat()}


@contextmanager
def _statements(client: httpx.AsyncClient) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # The outbox relay, woken by the commit, shares the engine; its statements are its own.
        relay = ("pg_try_advisory_xact_lock", "outbox.seq", "UPDATE outbox")
        if "INSERT INTO outbox" in statement or not any(mark in statement for mark in relay):
            seen.append(statement)

    engine = runtime(client.app).engine.sync_engine  # type: ignore[attr-defined]
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_an_examination_and_its_outcome_are_each_written_in_one_statement(
    service_client: Any, settings: Settings
) -> None:
    placement_id = await _placement_arrived(settings)
    async with service_client("health") as health:
        with _statements(health) as booked_seen:
            booked = await health.post("/v1/examinations", json=_booking(placement_id))
        assert booked.status_code == 201, booked.text
        exam_id = booked.json()["id"]
        with _statements(health) as outcome_seen:
            done = await health.post(
                f"/v1/examinations/{exam_id}/outcome", json={"status": "completed", "date": DAY0.isoformat()}
            )
        assert done.status_code == 200, done.text
    assert len(booked_seen) == 2, booked_seen
    read, write = booked_seen
    assert read.startswith("SELECT") and "FROM placement_view" in read and "FOR UPDATE" not in read
    assert "FROM placement_view" in write and "FOR UPDATE" in write
    for table in ("examination", "examination_status", "outbox", "audit"):
        assert f"INSERT INTO {table} " in write, table
    # The examination with its placement and its history, then the one write.
    assert len(outcome_seen) == 2, outcome_seen
    read, write = outcome_seen
    assert read.startswith("SELECT") and "FROM examination" in read and "FOR UPDATE" not in read
    assert "FOR UPDATE" in write and "UPDATE examination SET" in write
    for table in ("examination_status", "outbox", "audit"):
        assert f"INSERT INTO {table} " in write, table
    # What was answered is what was written.
    [row] = await _sql(settings, "SELECT status, updated_at FROM examination WHERE id = $1", uuid.UUID(exam_id))
    assert (row["status"], row["updated_at"].isoformat()) == (
        "completed",
        done.json()["updated_at"].replace("Z", "+00:00"),
    )
    history = await _sql(
        settings, "SELECT status FROM examination_status WHERE examination_id = $1 ORDER BY id", uuid.UUID(exam_id)
    )
    assert [h["status"] for h in history] == ["booked", "completed"] == [s["status"] for s in done.json()["history"]]
    events = await _sql(
        settings, "SELECT type FROM outbox WHERE payload->'data'->>'examination_id' = $1 ORDER BY seq", exam_id
    )
    assert [e["type"] for e in events] == ["obruten.health.exam_booked", "obruten.health.exam_completed"]
    audited = await _sql(settings, "SELECT status, outcome FROM audit WHERE route LIKE '/v1/examinations%' ORDER BY id")
    assert [(a["status"], a["outcome"]) for a in audited] == [(201, "allowed"), (200, "allowed")]


Read = Callable[..., Awaitable[Any]]


def _meanwhile(monkeypatch: pytest.MonkeyPatch, name: str, change: Callable[[], Awaitable[None]]) -> list[int]:
    """`writes.<name>` with `change` committed right after its first read; the calls counted."""
    read: Read = getattr(writes, name)
    calls: list[int] = []

    async def read_then_change(*args: Any, **kwargs: Any) -> Any:
        found = await read(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            await change()
        return found

    monkeypatch.setattr(writes, name, read_then_change)
    return calls


async def test_a_placement_ended_between_the_read_and_the_write_reruns_the_request(
    service_client: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    placement_id = await _placement_arrived(settings)

    async def ended() -> None:  # a newer version arrives on the bus: the placement ended today
        await _sql(
            settings, "UPDATE placement_view SET version = 2, end_date = $2 WHERE placement_id = $1", placement_id, DAY0
        )

    calls = _meanwhile(monkeypatch, "read_placement", ended)
    async with service_client("health") as health:
        resp = await health.post("/v1/examinations", json=_booking(placement_id))
    # Read twice: the first write found the placement changed and wrote nothing; the rerun
    # checked the booking against the ended placement.
    assert len(calls) == 2
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "body.date" and "ended" in resp.json()["detail"]
    for table in ("examination", "examination_status", "outbox"):
        assert (await _sql(settings, f"SELECT count(*) AS n FROM {table}"))[0]["n"] == 0, table
    # One request, one row in the trail, with its final answer.
    audited = await _sql(settings, "SELECT status FROM audit WHERE route = '/v1/examinations'")
    assert [a["status"] for a in audited] == [422]


async def test_an_outcome_recorded_between_the_read_and_the_write_reruns_the_request(
    service_client: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    placement_id = await _placement_arrived(settings)
    async with service_client("health") as health:
        booked = await health.post("/v1/examinations", json=_booking(placement_id))
        assert booked.status_code == 201, booked.text
        exam_id = booked.json()["id"]

        async def declined() -> None:  # another caseworker records the other outcome first
            other = await health.post(
                f"/v1/examinations/{exam_id}/outcome", json={"status": "declined", "date": DAY0.isoformat()}
            )
            assert other.status_code == 200, other.text

        calls = _meanwhile(monkeypatch, "read_examination", declined)
        resp = await health.post(
            f"/v1/examinations/{exam_id}/outcome", json={"status": "completed", "date": DAY0.isoformat()}
        )
    # Ours, the other's, and ours again after the examination was found changed.
    assert len(calls) == 3
    assert resp.status_code == 409, resp.text
    assert (resp.json()["type"].rsplit("/", 1)[-1], resp.json()["field"]) == ("not-booked", "body.status")
    [row] = await _sql(settings, "SELECT status FROM examination WHERE id = $1", uuid.UUID(exam_id))
    assert row["status"] == "declined"
    history = await _sql(settings, "SELECT status FROM examination_status ORDER BY id")
    assert [h["status"] for h in history] == ["booked", "declined"]
    events = await _sql(settings, "SELECT type FROM outbox ORDER BY seq")
    assert [e["type"] for e in events] == ["obruten.health.exam_booked", "obruten.health.exam_declined"]


async def test_a_booking_made_between_the_read_and_the_write_is_refused_as_when_read(
    service_client: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    placement_id = await _placement_arrived(settings)
    other: list[str] = []
    async with service_client("health") as health:

        async def booked() -> None:
            resp = await health.post("/v1/examinations", json=_booking(placement_id, DAY0 + timedelta(days=2)))
            assert resp.status_code == 201, resp.text
            other.append(resp.json()["id"])

        _meanwhile(monkeypatch, "read_placement", booked)
        resp = await health.post("/v1/examinations", json=_booking(placement_id))
    # The unique index refused the statement whole; the answer names the booking that won.
    assert resp.status_code == 409, resp.text
    assert (resp.json()["field"], resp.json()["open_examination_id"]) == ("body.kind", other[0])
    assert (await _sql(settings, "SELECT count(*) AS n FROM examination"))[0]["n"] == 1
    assert (await _sql(settings, "SELECT count(*) AS n FROM examination_status"))[0]["n"] == 1
    assert (await _sql(settings, "SELECT count(*) AS n FROM outbox"))[0]["n"] == 1
