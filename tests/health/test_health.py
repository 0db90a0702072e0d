"""The health service over HTTP, on a real PostgreSQL, with its events on a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from shared.contracts.envelope import make_event
from shared.contracts.placement import PLACEMENT_CHANGED, PLACEMENT_STARTED, PlacementSnapshot
from shared.contracts.topics import TOPIC_HEALTH, TOPIC_PLACEMENT
from shared.kernel.settings import Settings
from shared.local.migrate import _asyncpg_dsn
from shared.web.runtime import runtime
from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.support import TopicTail, eventually
from tests.kernel.test_contracts import committed_doc, validate_event

DAY0 = date(2025, 9, 1)  # the clock fixture's today
PLACED = DAY0 - timedelta(days=30)
PROVIDER = "Tandvården Lindqvist, Gnesta"
EVENT_FIELDS = {"examination_id", "placement_id", "child_id", "district", "kind", "status", "booked_date", "date"}
TABLES = ("examination", "examination_status", "outbox", "placement_view", "inbox")


async def count_rows(settings: Settings, table: str) -> int:
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("health")))  # type: ignore[arg-type]
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


async def counts(settings: Settings) -> dict[str, int]:
    return {t: await count_rows(settings, t) for t in TABLES}


def assert_problem(resp: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"]
    if field is not None:
        assert body["field"] == field, body
    return body


@contextlib.asynccontextmanager
async def suite(
    live_service: Any, service_client: Any, settings: Settings, tokens: Any, *, role: str = "admin"
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """A live placement service whose events go to topics the health service does not read,
    so health can only learn of a placement by asking it over HTTP."""
    elsewhere = {"kafka_topic_prefix": f"{settings.kafka_topic_prefix}elsewhere."}
    async with live_service("placement", settings_override=elsewhere) as url:
        async with httpx.AsyncClient(base_url=url, headers=tokens.headers("admin")) as placement:
            async with service_client("health", role=role, settings_override={"placement_url": url}) as health:
                yield placement, health


async def new_placement(placement: httpx.AsyncClient, n: int, *, start: date = PLACED) -> tuple[str, str, str]:
    """(child id, placement id, personnummer) of a fresh child placed on `start`."""
    body = child_body(n)
    child = await placement.post("/v1/children", json=body)
    assert child.status_code == 201, child.text
    placed = await placement.post("/v1/placements", json=placement_body(child.json()["id"], start=start))
    assert placed.status_code == 201, placed.text
    return child.json()["id"], placed.json()["id"], body["personnummer"]


def exam(placement_id: str, kind: str, status: str, day: date, **extra: Any) -> dict[str, Any]:
    return {"placement_id": placement_id, "kind": kind, "status": status, "date": day.isoformat(), **extra}


async def test_health_and_dental_booked_then_completed_are_announced_in_order_without_personal_data(
    live_service, service_client, settings, tokens, clock
):
    async with suite(live_service, service_client, settings, tokens) as (placement, health):
        child_id, placement_id, personnummer = await new_placement(placement, 1)
        async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_HEALTH)) as tail:
            booked_day = DAY0 + timedelta(days=7)
            h = await health.post("/v1/examinations", json=exam(placement_id, "health", "booked", booked_day))
            assert h.status_code == 201, h.text
            d = await health.post(
                "/v1/examinations", json=exam(placement_id, "dental", "booked", booked_day, provider=PROVIDER)
            )
            assert d.status_code == 201, d.text
            assert d.json()["provider"] == PROVIDER and d.json()["child_id"] == child_id
            # Both took place on the booked day.
            done = booked_day
            clock.set_today(done)
            completed = {"status": "completed", "date": done.isoformat()}
            hc = await health.post(f"/v1/examinations/{h.json()['id']}/outcome", json=completed)
            assert hc.status_code == 200, hc.text
            dc = await health.post(f"/v1/examinations/{d.json()['id']}/outcome", json=completed)
            assert dc.status_code == 200, dc.text
            kept = (await health.get(f"/v1/examinations/{d.json()['id']}")).json()
            assert kept["provider"] == PROVIDER and kept["status"] == "completed"
            await tail.collect(4)
            messages = await tail.settle()
    assert len(messages) == 4
    events = tail.events()
    assert [(e["type"], e["data"]["kind"]) for e in events] == [
        ("obruten.health.exam_booked", "health"),
        ("obruten.health.exam_booked", "dental"),
        ("obruten.health.exam_completed", "health"),
        ("obruten.health.exam_completed", "dental"),
    ]
    assert [e["data"]["examination_id"] for e in events] == [h.json()["id"], d.json()["id"]] * 2
    doc = committed_doc()
    for message, event in zip(messages, events, strict=True):
        validate_event(doc, event)
        assert message.key.decode() == child_id and event["subject"] == child_id
        assert event["source"] == "/obruten/health" and event["specversion"] == "1.0"
        assert set(event["data"]) == EVENT_FIELDS
        assert event["data"]["placement_id"] == placement_id and event["data"]["district"] == "Farsta"
        assert event["data"]["booked_date"] == booked_day.isoformat()
    assert [e["data"]["date"] for e in events] == [booked_day.isoformat()] * 2 + [done.isoformat()] * 2
    raw = b"".join(m.value for m in messages)
    # The relay writes JSON with non-ASCII escaped, so the provider is searched in both spellings.
    provider_escaped = json.dumps(PROVIDER)[1:-1]
    for needle in (
        personnummer,
        personnummer.replace("-", ""),
        personnummer[2:],
        PROVIDER,
        provider_escaped,
        "Lindqvist",
    ):
        assert needle.encode() not in raw, needle


async def test_an_outcome_recorded_directly_emits_only_that_event(live_service, service_client, settings, tokens):
    async with suite(live_service, service_client, settings, tokens) as (placement, health):
        child_id, placement_id, _ = await new_placement(placement, 2)
        async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_HEALTH)) as tail:
            resp = await health.post(
                "/v1/examinations", json=exam(placement_id, "health", "completed", DAY0 - timedelta(days=3))
            )
            assert resp.status_code == 201, resp.text
            created = resp.json()
            assert created["status"] == "completed" and created["booked_date"] is None
            assert [(s["status"], s["date"]) for s in created["history"]] == [("completed", "2025-08-29")]
            await tail.collect(1)
            messages = await tail.settle()
    assert [json.loads(m.value)["type"] for m in messages] == ["obruten.health.exam_completed"]
    data = json.loads(messages[0].value)["data"]
    assert data["booked_date"] is None and data["date"] == "2025-08-29" and data["child_id"] == child_id


async def test_a_placement_not_seen_on_the_bus_is_asked_of_the_placement_service(
    live_service, service_client, settings, tokens
):
    async with suite(live_service, service_client, settings, tokens) as (placement, health):
        child_id, placement_id, _ = await new_placement(placement, 3)
        assert await count_rows(settings, "placement_view") == 0
        resp = await health.post("/v1/examinations", json=exam(placement_id, "dental", "booked", DAY0))
        assert resp.status_code == 201, resp.text
        assert resp.json()["child_id"] == child_id and resp.json()["district"] == "Farsta"
        unknown = await health.post("/v1/examinations", json=exam(str(uuid.uuid4()), "dental", "booked", DAY0))
        assert_problem(unknown, 404, "body.placement_id")
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("health")))  # type: ignore[arg-type]
    try:
        rows = await conn.fetch("SELECT placement_id, child_id, start_date, version FROM placement_view")
    finally:
        await conn.close()
    assert [(str(r["placement_id"]), str(r["child_id"]), r["start_date"], r["version"]) for r in rows] == [
        (placement_id, child_id, PLACED, 1)
    ]
    # Nothing came over the bus: the copy was fetched.
    assert await count_rows(settings, "inbox") == 0


async def test_placement_events_on_the_bus_feed_the_projection(service_client, settings):
    # The health service cannot reach a placement service here (port 9 listens to nothing),
    # so the booking can only succeed from what arrived on the bus.
    async with service_client("placement") as placement:
        child_id = (await placement.post("/v1/children", json=child_body(4))).json()["id"]
        placed = await placement.post("/v1/placements", json=placement_body(child_id, start=PLACED))
        assert placed.status_code == 201, placed.text
        placement_id = placed.json()["id"]
        async with service_client("health", settings_override={"placement_url": "http://127.0.0.1:9"}) as health:
            await eventually(lambda: _count_is(settings, "placement_view", 1))
            resp = await health.post("/v1/examinations", json=exam(placement_id, "health", "booked", DAY0))
            assert resp.status_code == 201, resp.text
            ended = await placement.post(
                f"/v1/placements/{placement_id}/end", json={"end_date": DAY0.isoformat(), "end_reason": "care_plan"}
            )
            assert ended.status_code == 200, ended.text
            await eventually(lambda: _count_is(settings, "inbox", 2))
            # The ended placement (version 2) now refuses a booking on or after its end.
            late = await health.post(
                f"/v1/examinations/{resp.json()['id']}/rebook", json={"date": (DAY0 + timedelta(days=1)).isoformat()}
            )
            body = assert_problem(late, 422, "body.date")
            assert "ended" in body["detail"]


async def _count_is(settings: Settings, table: str, expected: int) -> bool:
    return await count_rows(settings, table) == expected


def _snapshot(placement_id: uuid.UUID, child_id: uuid.UUID, version: int, **changes: Any) -> PlacementSnapshot:
    fields: dict[str, Any] = {
        "placement_id": placement_id,
        "child_id": child_id,
        "version": version,
        "district": "Farsta",
        "form": "familjehem",
        "variants": [],
        "legal_basis": "SoL",
        "duration": "temporary",
        "start_date": PLACED,
        "planned_end_date": None,
        "end_date": None,
        "end_reason": None,
        "school_change": False,
        "child_birth_date": date(2013, 4, 2),
        "protected_identity": False,
        **changes,
    }
    return PlacementSnapshot(**fields)


async def test_redelivered_placement_event_changes_nothing(service_client, settings, clock):
    placement_id, child_id = uuid.uuid4(), uuid.uuid4()
    first = make_event(
        PLACEMENT_STARTED,
        source="/obruten/placement",
        subject=str(child_id),
        data=_snapshot(placement_id, child_id, 1),
        time=clock.now(),
    )
    changed = make_event(
        PLACEMENT_CHANGED,
        source="/obruten/placement",
        subject=str(child_id),
        data=_snapshot(placement_id, child_id, 2, district="Bromma"),
        time=clock.now(),
    )
    first_bytes = json.dumps(first.model_dump(mode="json", exclude_none=True)).encode()
    changed_bytes = json.dumps(changed.model_dump(mode="json", exclude_none=True)).encode()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_servers(), enable_idempotence=False, acks="all")
    await producer.start()
    topic, key = settings.topic(TOPIC_PLACEMENT), str(child_id).encode()
    try:
        async with service_client("health") as health:
            consumer = runtime(health.app).consumers[0]
            for value in (first_bytes, first_bytes):
                await producer.send_and_wait(topic, value=value, key=key)
            await eventually(lambda: _async(consumer.processed == 2))
            assert await count_rows(settings, "placement_view") == 1
            assert await count_rows(settings, "inbox") == 1
            # A newer version, then the old event once more: the copy keeps the newer one.
            for value in (changed_bytes, first_bytes):
                await producer.send_and_wait(topic, value=value, key=key)
            await eventually(lambda: _async(consumer.processed == 4))
            assert consumer.dead_lettered == 0
    finally:
        await producer.stop()
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("health")))  # type: ignore[arg-type]
    try:
        rows = await conn.fetch("SELECT placement_id, version, district FROM placement_view")
        inbox = await conn.fetch("SELECT event_id FROM inbox ORDER BY event_id")
    finally:
        await conn.close()
    assert [(r["placement_id"], r["version"], r["district"]) for r in rows] == [(placement_id, 2, "Bromma")]
    assert sorted(r["event_id"] for r in inbox) == sorted([first.id, changed.id])


async def _async(value: bool) -> bool:
    return value


async def test_bad_new_examinations_are_refused_naming_the_field_and_nothing_is_written(
    live_service, service_client, settings, tokens, clock
):
    async with suite(live_service, service_client, settings, tokens) as (placement, health):
        _, pid, _ = await new_placement(placement, 5)
        tomorrow, yesterday = DAY0 + timedelta(days=1), DAY0 - timedelta(days=1)
        cases: list[tuple[str, dict[str, Any], int, str]] = [
            ("unknown placement", exam(str(uuid.uuid4()), "health", "booked", DAY0), 404, "body.placement_id"),
            ("malformed placement id", exam("p-42", "health", "booked", DAY0), 422, "body.placement_id"),
            ("completed tomorrow", exam(pid, "health", "completed", tomorrow), 422, "body.date"),
            ("declined tomorrow", exam(pid, "dental", "declined", tomorrow), 422, "body.date"),
            ("missed tomorrow", exam(pid, "dental", "missed", tomorrow), 422, "body.date"),
            ("booked yesterday", exam(pid, "health", "booked", yesterday), 422, "body.date"),
            ("booked too far ahead", exam(pid, "health", "booked", DAY0 + timedelta(days=400)), 422, "body.date"),
            ("before the placement", exam(pid, "health", "completed", PLACED - timedelta(days=1)), 422, "body.date"),
            ("unknown kind", exam(pid, "eyes", "booked", DAY0), 422, "body.kind"),
            ("unknown status", exam(pid, "health", "postponed", DAY0), 422, "body.status"),
            ("impossible date", {**exam(pid, "health", "booked", DAY0), "date": "2025-09-31"}, 422, "body.date"),
            (
                "no date",
                {k: v for k, v in exam(pid, "health", "booked", DAY0).items() if k != "date"},
                422,
                "body.date",
            ),
            ("medical content", exam(pid, "health", "completed", DAY0, findings="asthma"), 422, "body.findings"),
            ("provider too long", exam(pid, "health", "booked", DAY0, provider="x" * 201), 422, "body.provider"),
            ("blank provider", exam(pid, "health", "booked", DAY0, provider="   "), 422, "body.provider"),
            ("NUL in provider", exam(pid, "health", "booked", DAY0, provider="a\x00b"), 422, "body.provider"),
        ]
        for name, body, status, field in cases:
            resp = await health.post("/v1/examinations", json=body)
            problem = assert_problem(resp, status, field)
            assert problem.get("detail"), name
            # Not even the placement fetched from the placement service is kept.
            assert await counts(settings) == dict.fromkeys(TABLES, 0), name
        assert "asthma" not in resp.text
        # The edges are accepted: booked today, completed today, completed on the placement's first day.
        for body in (
            exam(pid, "health", "booked", DAY0),
            exam(pid, "dental", "completed", DAY0),
            exam(pid, "dental", "completed", PLACED),
        ):
            assert (await health.post("/v1/examinations", json=body)).status_code == 201, body
        before = await counts(settings)
        assert before["examination"] == 3 and before["outbox"] == 3
        second = await health.post("/v1/examinations", json=exam(pid, "health", "booked", tomorrow))
        problem = assert_problem(second, 409, "body.kind")
        assert problem["open_examination_id"]
        assert_problem(await health.get("/v1/examinations", params={"district": "Gotham"}), 422, "query.district")
        assert_problem(await health.get("/v1/examinations", params={"kind": "eyes"}), 422, "query.kind")
        assert_problem(await health.get("/v1/examinations", params={"offset": str(10**20)}), 422, "query.offset")
        assert await counts(settings) == before


async def test_nonsense_transitions_are_refused_and_nothing_is_written(
    live_service, service_client, settings, tokens, clock
):
    async with suite(live_service, service_client, settings, tokens) as (placement, health):
        _, pid, _ = await new_placement(placement, 6)
        booked = await health.post("/v1/examinations", json=exam(pid, "health", "booked", DAY0 + timedelta(days=2)))
        booked_id = booked.json()["id"]
        completed_id = (await health.post("/v1/examinations", json=exam(pid, "dental", "completed", DAY0))).json()["id"]
        declined_id = (await health.post("/v1/examinations", json=exam(pid, "health", "declined", DAY0))).json()["id"]
        missed_id = (await health.post("/v1/examinations", json=exam(pid, "dental", "missed", DAY0))).json()["id"]
        before = await counts(settings)
        assert before["examination"] == 4 and before["outbox"] == 4
        today = DAY0.isoformat()
        cases: list[tuple[str, str, dict[str, Any], int, str | None]] = [
            (
                "complete a completed one",
                f"{completed_id}/outcome",
                {"status": "completed", "date": today},
                409,
                "body.status",
            ),
            (
                "decline a completed one",
                f"{completed_id}/outcome",
                {"status": "declined", "date": today},
                409,
                "body.status",
            ),
            (
                "complete a declined one",
                f"{declined_id}/outcome",
                {"status": "completed", "date": today},
                409,
                "body.status",
            ),
            (
                "complete a missed one",
                f"{missed_id}/outcome",
                {"status": "completed", "date": today},
                409,
                "body.status",
            ),
            ("rebook a completed one", f"{completed_id}/rebook", {"date": today}, 409, "body.date"),
            ("outcome 'booked'", f"{booked_id}/outcome", {"status": "booked", "date": today}, 422, "body.status"),
            (
                "completed in the future",
                f"{booked_id}/outcome",
                {"status": "completed", "date": (DAY0 + timedelta(days=2)).isoformat()},
                422,
                "body.date",
            ),
            (
                "missed before its booked date",
                f"{booked_id}/outcome",
                {"status": "missed", "date": today},
                422,
                "body.date",
            ),
            (
                "completed before the placement",
                f"{booked_id}/outcome",
                {"status": "completed", "date": (PLACED - timedelta(days=1)).isoformat()},
                422,
                "body.date",
            ),
            (
                "rebook into the past",
                f"{declined_id}/rebook",
                {"date": (DAY0 - timedelta(days=1)).isoformat()},
                422,
                "body.date",
            ),
            ("rebook beside an open booking", f"{declined_id}/rebook", {"date": today}, 409, "body.date"),
            (
                "medical content in an outcome",
                f"{booked_id}/outcome",
                {"status": "completed", "date": today, "result": "x"},
                422,
                "body.result",
            ),
            ("unknown examination", f"{uuid.uuid4()}/outcome", {"status": "completed", "date": today}, 404, None),
            ("malformed examination id", "42/rebook", {"date": today}, 422, "path.examination_id"),
        ]
        for name, path, body, status, field in cases:
            resp = await health.post(f"/v1/examinations/{path}", json=body)
            assert_problem(resp, status, field)
            assert await counts(settings) == before, name
        for ident, status in ((booked_id, "booked"), (completed_id, "completed"), (declined_id, "declined")):
            assert (await health.get(f"/v1/examinations/{ident}")).json()["status"] == status
        assert_problem(await health.get(f"/v1/examinations/{uuid.uuid4()}"), 404)


async def test_missed_then_rebooked_then_completed_keeps_its_history(
    live_service, service_client, settings, tokens, clock
):
    async with suite(live_service, service_client, settings, tokens, role="health_staff") as (placement, health):
        child_id, pid, _ = await new_placement(placement, 7)
        async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_HEALTH)) as tail:
            first = DAY0 + timedelta(days=3)
            resp = await health.post("/v1/examinations", json=exam(pid, "dental", "booked", first, provider=PROVIDER))
            assert resp.status_code == 201, resp.text
            ident = resp.json()["id"]
            clock.set_today(first)
            missed = await health.post(
                f"/v1/examinations/{ident}/outcome", json={"status": "missed", "date": str(first)}
            )
            assert missed.status_code == 200, missed.text
            second = first + timedelta(days=14)
            again = await health.post(f"/v1/examinations/{ident}/rebook", json={"date": str(second)})
            assert again.status_code == 200, again.text
            assert again.json()["provider"] == PROVIDER, "rebooking without a provider keeps it"
            clock.set_today(second)
            done = await health.post(
                f"/v1/examinations/{ident}/outcome", json={"status": "completed", "date": str(second)}
            )
            assert done.status_code == 200, done.text
            await tail.collect(4)
            await tail.settle()
        got = (await health.get(f"/v1/examinations/{ident}")).json()
        assert got["status"] == "completed" and got["date"] == str(second) and got["booked_date"] == str(second)
        assert [(s["status"], s["date"]) for s in got["history"]] == [
            ("booked", str(first)),
            ("missed", str(first)),
            ("booked", str(second)),
            ("completed", str(second)),
        ]
    events = tail.events()
    assert [e["type"].rsplit(".", 1)[1] for e in events] == [
        "exam_booked",
        "exam_missed",
        "exam_booked",
        "exam_completed",
    ]
    assert [e["data"]["booked_date"] for e in events] == [str(first), str(first), str(second), str(second)]
    assert all(e["subject"] == child_id and e["data"]["examination_id"] == ident for e in events)


async def test_list_filters(live_service, service_client, settings, tokens):
    async with suite(live_service, service_client, settings, tokens) as (placement, health):
        _, a, _ = await new_placement(placement, 8)
        _, b, _ = await new_placement(placement, 9)
        for body in (
            exam(a, "health", "completed", DAY0),
            exam(a, "dental", "booked", DAY0 + timedelta(days=5)),
            exam(b, "dental", "declined", DAY0 - timedelta(days=1)),
        ):
            assert (await health.post("/v1/examinations", json=body)).status_code == 201

        async def listed(**params: str) -> list[tuple[str, str, str]]:
            page = (await health.get("/v1/examinations", params=params)).json()
            assert page["total"] == len(page["items"])
            return [(e["placement_id"], e["kind"], e["status"]) for e in page["items"]]

        assert await listed(placement_id=a) == [(a, "dental", "booked"), (a, "health", "completed")]
        assert await listed(kind="dental") == [(a, "dental", "booked"), (b, "dental", "declined")]
        assert await listed(status="declined") == [(b, "dental", "declined")]
        assert len(await listed(district="Farsta")) == 3
        assert await listed(district="Bromma") == []
        assert await listed(placement_id=b, kind="health") == []


async def test_roles(live_service, service_client, settings, tokens):
    async with suite(live_service, service_client, settings, tokens, role="school_coordinator") as (placement, health):
        _, pid, _ = await new_placement(placement, 10)
        assert_problem(await health.post("/v1/examinations", json=exam(pid, "health", "booked", DAY0)), 403)
        assert_problem(await health.get("/v1/examinations"), 403)
        assert_problem(await health.get("/v1/examinations", headers={"Authorization": ""}), 401)
        assert await counts(settings) == dict.fromkeys(TABLES, 0)


async def test_concurrent_bookings_of_one_kind_leave_one_open_booking(live_service, service_client, settings, tokens):
    async with suite(live_service, service_client, settings, tokens) as (placement, health):
        _, pid, _ = await new_placement(placement, 11)
        answers = await asyncio.gather(
            *(
                health.post("/v1/examinations", json=exam(pid, "health", "booked", DAY0 + timedelta(days=n)))
                for n in range(5)
            )
        )
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409, 409]
    for refused in (r for r in answers if r.status_code == 409):
        assert_problem(refused, 409, "body.kind")
    assert await count_rows(settings, "examination") == 1
    assert await count_rows(settings, "outbox") == 1
    assert await count_rows(settings, "placement_view") == 1
