"""The school service over HTTP, on a real PostgreSQL, with its events on a real broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts.envelope import EventType, make_event
from shared.contracts.placement import PLACEMENT_CHANGED, PLACEMENT_STARTED, PlacementSnapshot
from shared.contracts.topics import TOPIC_PLACEMENT, TOPIC_SCHOOL
from shared.kernel.clock import FixedClock
from shared.kernel.settings import Settings
from shared.local.embedded import free_port
from shared.local.migrate import _asyncpg_dsn
from shared.web.runtime import runtime
from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.support import TopicTail, eventually
from tests.kernel.test_contracts import committed_doc, validate_event

DAY0 = date(2025, 9, 1)  # the clock fixture's today
SCHOOL_TABLES = ("school_plan", "school_start", "school_end", "outbox")


async def _connect(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("school")))  # type: ignore[arg-type]


async def count_rows(settings: Settings, table: str) -> int:
    conn = await _connect(settings)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


async def counts(settings: Settings) -> dict[str, int]:
    return {t: await count_rows(settings, t) for t in SCHOOL_TABLES}


async def projection(settings: Settings) -> list[dict[str, Any]]:
    conn = await _connect(settings)
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM placement_view ORDER BY placement_id")]
    finally:
        await conn.close()


async def plant_placement(
    settings: Settings,
    *,
    start: date = DAY0 - timedelta(days=20),
    end: date | None = None,
    school_change: bool = True,
    protected: bool = False,
    form: str = "familjehem",
    district: str = "Farsta",
) -> tuple[str, str]:
    """A placement as the school service's projection holds it, without going through the bus."""
    placement_id, child_id = uuid.uuid4(), uuid.uuid4()
    conn = await _connect(settings)
    try:
        await conn.execute(
            "INSERT INTO placement_view (placement_id, child_id, version, district, form, start_date, end_date,"
            " end_reason, school_change, child_birth_date, protected_identity)"
            " VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10)",
            placement_id,
            child_id,
            district,
            form,
            start,
            end,
            "care_plan" if end else None,
            school_change,
            date(2013, 4, 1),
            protected,
        )
    finally:
        await conn.close()
    return str(placement_id), str(child_id)


def assert_problem(resp: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"]
    if field is not None:
        assert body["field"] == field, body
    return body


def snapshot(placement_id: uuid.UUID, child_id: uuid.UUID, *, version: int, **changes: Any) -> PlacementSnapshot:
    fields: dict[str, Any] = {
        "placement_id": placement_id,
        "child_id": child_id,
        "version": version,
        "district": "Farsta",
        "form": "familjehem",
        "variants": [],
        "legal_basis": "SoL",
        "duration": "temporary",
        "start_date": DAY0,
        "planned_end_date": None,
        "end_date": None,
        "end_reason": None,
        "school_change": True,
        "child_birth_date": date(2013, 4, 1),
        "protected_identity": False,
        **changes,
    }
    return PlacementSnapshot.model_validate(fields)


def event_bytes(etype: EventType, data: PlacementSnapshot, clock: FixedClock) -> bytes:
    event = make_event(etype, source="/obruten/placement", subject=str(data.child_id), data=data, time=clock.now())
    return json.dumps(event.model_dump(mode="json", exclude_none=True)).encode()


async def produce(settings: Settings, key: uuid.UUID, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_servers(), enable_idempotence=False, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.topic(TOPIC_PLACEMENT), value=value, key=str(key).encode())
    finally:
        await producer.stop()


async def test_school_start_on_day_9_reports_9_days_on_the_bus(service_client, live_service, tokens, settings, clock):
    clock.set_today(DAY0 + timedelta(days=9))
    async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_SCHOOL)) as tail:
        # Live: before an event names a school unit, school asks placement whether the child is
        # protected now (fail closed, services/school/service.py confirmed_protected).
        async with (
            live_service("placement") as url,
            httpx.AsyncClient(base_url=url, headers=tokens.headers("admin")) as placement,
            service_client("school", settings_override={"placement_url": url}) as school,
        ):
            child_id = (await placement.post("/v1/children", json=child_body(1))).json()["id"]
            created = await placement.post("/v1/placements", json=placement_body(child_id, start=DAY0))
            assert created.status_code == 201, created.text
            placement_id = created.json()["id"]

            async def seen() -> bool:
                return await count_rows(settings, "placement_view") == 1

            await eventually(seen)
            resp = await school.post(
                "/v1/school-starts",
                json={
                    "placement_id": placement_id,
                    "start_date": (DAY0 + timedelta(days=9)).isoformat(),
                    "school_unit_code": "12345678",
                },
            )
            assert resp.status_code == 201, resp.text
            start = resp.json()
            assert start["days_to_school_start"] == 9
            assert start["provision"] == "school_unit" and start["school_unit_code"] == "12345678"
            assert start["child_id"] == child_id and start["placement_start_date"] == DAY0.isoformat()
            again = await school.get(f"/v1/school-starts/{start['id']}")
            assert again.status_code == 200 and again.json()["days_to_school_start"] == 9
            messages = await tail.collect(1)
    assert len(messages) == 1
    assert messages[0].key.decode() == child_id
    event = json.loads(messages[0].value)
    assert event["type"] == "obruten.school.started"
    assert event["source"] == "/obruten/school"
    assert event["subject"] == child_id
    assert event["data"]["days_to_school_start"] == 9
    assert event["data"]["school_start_id"] == start["id"]
    assert event["data"]["placement_id"] == placement_id
    assert event["data"]["school_unit_code"] == "12345678"
    validate_event(committed_doc(), event)
    # The projection came from the bus: one event claimed in the inbox.
    assert await count_rows(settings, "inbox") == 1


async def test_no_school_change_means_no_day_count(service_client, settings):
    placement_id, _ = await plant_placement(settings, school_change=False)
    async with service_client("school") as school:
        resp = await school.post(
            "/v1/school-starts",
            json={"placement_id": placement_id, "start_date": DAY0.isoformat(), "provision": "home_school"},
        )
    assert resp.status_code == 201, resp.text
    assert resp.json()["days_to_school_start"] is None
    assert resp.json()["provision"] == "home_school" and resp.json()["school_unit_code"] is None


async def test_a_placement_not_seen_on_the_bus_is_asked_for(service_client, live_service, settings, tokens, clock):
    async with live_service("placement") as url:
        async with httpx.AsyncClient(base_url=url, headers=tokens.headers("admin")) as placement:
            child_id = (await placement.post("/v1/children", json=child_body(2))).json()["id"]
            start = DAY0 - timedelta(days=4)
            created = await placement.post("/v1/placements", json=placement_body(child_id, start=start))
            assert created.status_code == 201, created.text
            placement_id = created.json()["id"]
        # Another topic prefix: the school service cannot learn of the placement from the bus.
        isolated = {"placement_url": url, "kafka_topic_prefix": f"{settings.kafka_topic_prefix}isolated."}
        async with service_client("school", settings_override=isolated) as school:
            resp = await school.post(
                "/v1/school-starts",
                json={"placement_id": placement_id, "start_date": DAY0.isoformat(), "provision": "other_teaching"},
            )
            assert resp.status_code == 201, resp.text
            assert resp.json()["days_to_school_start"] == 4
            assert resp.json()["child_id"] == child_id
            unknown = await school.post(
                "/v1/school-starts",
                json={"placement_id": str(uuid.uuid4()), "start_date": DAY0.isoformat(), "provision": "home_school"},
            )
            assert_problem(unknown, 404, "body.placement_id")
    rows = await projection(settings)
    assert [(str(r["placement_id"]), r["version"], r["start_date"]) for r in rows] == [(placement_id, 1, start)]
    assert await count_rows(settings, "inbox") == 0
    assert await count_rows(settings, "school_start") == 1


async def test_placement_service_down_is_503_and_nothing_written(service_client, settings):
    down = {"placement_url": f"http://127.0.0.1:{free_port()}"}
    async with service_client("school", settings_override=down) as school:
        resp = await school.post(
            "/v1/school-starts",
            json={"placement_id": str(uuid.uuid4()), "start_date": DAY0.isoformat(), "provision": "home_school"},
        )
    assert_problem(resp, 503)
    assert await counts(settings) == dict.fromkeys(SCHOOL_TABLES, 0)
    assert await count_rows(settings, "placement_view") == 0


async def test_redelivered_placement_event_changes_nothing(service_client, settings, clock):
    placement_id, child_id = uuid.uuid4(), uuid.uuid4()
    raw = event_bytes(PLACEMENT_STARTED, snapshot(placement_id, child_id, version=1), clock)
    async with service_client("school") as school:
        consumer = runtime(school.app).consumers[0]
        await produce(settings, child_id, raw, raw)

        async def both_handled() -> bool:
            return bool(consumer.processed >= 2)

        await eventually(both_handled, timeout=30)
    rows = await projection(settings)
    assert len(rows) == 1
    assert rows[0]["placement_id"] == placement_id and rows[0]["version"] == 1
    assert rows[0]["start_date"] == DAY0 and rows[0]["school_change"] is True
    assert await count_rows(settings, "inbox") == 1
    assert consumer.dead_lettered == 0


async def test_an_older_placement_version_does_not_overwrite_a_newer(service_client, settings, clock):
    placement_id, child_id = uuid.uuid4(), uuid.uuid4()
    newer = snapshot(
        placement_id,
        child_id,
        version=2,
        school_change=False,
        end_date=DAY0,
        end_reason="care_plan",
        start_date=DAY0 - timedelta(days=10),
    )
    older = snapshot(placement_id, child_id, version=1, start_date=DAY0 - timedelta(days=10))
    async with service_client("school") as school:
        consumer = runtime(school.app).consumers[0]
        await produce(
            settings,
            child_id,
            event_bytes(PLACEMENT_CHANGED, newer, clock),
            event_bytes(PLACEMENT_STARTED, older, clock),
        )

        async def both_handled() -> bool:
            return bool(consumer.processed >= 2)

        await eventually(both_handled, timeout=30)
    rows = await projection(settings)
    assert len(rows) == 1
    assert rows[0]["version"] == 2 and rows[0]["end_date"] == DAY0 and rows[0]["school_change"] is False
    assert await count_rows(settings, "inbox") == 2


@pytest.mark.parametrize(
    "planted",
    [
        {"protected": True, "form": "familjehem"},
        # The form alone must be enough, whatever the flag says.
        {"protected": False, "form": "skyddat_boende"},
    ],
    ids=["protected-identity", "protected-housing"],
)
async def test_protected_child_school_unit_never_reaches_the_bus(service_client, settings, planted):
    code = "87654321"
    placement_id, child_id = await plant_placement(settings, **planted)
    async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_SCHOOL)) as tail:
        async with service_client("school") as school:
            plan = await school.post(
                "/v1/school-plans",
                json={
                    "placement_id": placement_id,
                    "drawn_up_on": DAY0.isoformat(),
                    "planned_school_unit_code": code,
                    "responsible": "Lärteamet",
                },
            )
            assert plan.status_code == 201, plan.text
            resp = await school.post(
                "/v1/school-starts",
                json={"placement_id": placement_id, "start_date": DAY0.isoformat(), "school_unit_code": code},
            )
            assert resp.status_code == 201, resp.text
            assert resp.json()["school_unit_code"] == code, "the record keeps it"
            await tail.collect(2)
            await tail.settle(0.5)
    assert [e["type"] for e in tail.events()] == ["obruten.school.plan_registered", "obruten.school.started"]
    for message in tail.messages:
        assert code.encode() not in message.value
        assert b"L\xc3\xa4rteamet" not in message.value
        assert message.key.decode() == child_id
    started = tail.events()[1]["data"]
    assert started["school_unit_code"] is None and started["provision"] == "school_unit"
    assert tail.events()[0]["data"]["planned_provision"] == "school_unit"


async def test_start_end_and_start_again(service_client, settings, clock):
    placement_id, child_id = await plant_placement(settings, start=DAY0 - timedelta(days=30))
    async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_SCHOOL)) as tail:
        async with service_client("school") as school:
            first = await school.post(
                "/v1/school-starts",
                json={
                    "placement_id": placement_id,
                    "start_date": (DAY0 - timedelta(days=25)).isoformat(),
                    "school_unit_code": "11112222",
                },
            )
            assert first.status_code == 201, first.text
            assert first.json()["days_to_school_start"] == 5
            ended = await school.post(
                "/v1/school-ends",
                json={
                    "placement_id": placement_id,
                    "end_date": (DAY0 - timedelta(days=10)).isoformat(),
                    "reason": "moved",
                },
            )
            assert ended.status_code == 201, ended.text
            assert ended.json()["school_start_id"] == first.json()["id"]
            assert (await school.get(f"/v1/school-starts/{first.json()['id']}")).json()["end_date"] == (
                DAY0 - timedelta(days=10)
            ).isoformat()
            overlapping = await school.post(
                "/v1/school-starts",
                json={
                    "placement_id": placement_id,
                    "start_date": (DAY0 - timedelta(days=11)).isoformat(),
                    "provision": "home_school",
                },
            )
            assert_problem(overlapping, 409, "body.start_date")
            second = await school.post(
                "/v1/school-starts",
                json={
                    "placement_id": placement_id,
                    "start_date": (DAY0 - timedelta(days=10)).isoformat(),
                    "provision": "protected_teaching",
                },
            )
            assert second.status_code == 201, second.text
            schooling = (await school.get(f"/v1/placements/{placement_id}/schooling")).json()
            assert [s["id"] for s in schooling["starts"]] == [first.json()["id"], second.json()["id"]]
            assert [e["id"] for e in schooling["ends"]] == [ended.json()["id"]]
            assert schooling["plans"] == []
            open_only = (await school.get("/v1/school-starts", params={"open": "true"})).json()
            assert [s["id"] for s in open_only["items"]] == [second.json()["id"]]
            await tail.collect(3)
    events = tail.events()
    assert [e["type"] for e in events] == [
        "obruten.school.started",
        "obruten.school.ended",
        "obruten.school.started",
    ]
    assert events[1]["data"]["reason"] == "moved" and events[1]["data"]["school_start_id"] == first.json()["id"]
    for event in events:
        validate_event(committed_doc(), event)
    assert all(e["subject"] == child_id for e in events)


async def test_list_filters(service_client, settings):
    farsta, _ = await plant_placement(settings)
    bromma, _ = await plant_placement(settings, district="Bromma")
    async with service_client("school") as school:
        for placement_id in (farsta, bromma):
            resp = await school.post(
                "/v1/school-starts",
                json={"placement_id": placement_id, "start_date": DAY0.isoformat(), "provision": "home_school"},
            )
            assert resp.status_code == 201, resp.text
        by_district = (await school.get("/v1/school-starts", params={"district": "Bromma"})).json()
        assert [s["placement_id"] for s in by_district["items"]] == [bromma] and by_district["total"] == 1
        by_placement = (await school.get("/v1/school-starts", params={"placement_id": farsta})).json()
        assert [s["placement_id"] for s in by_placement["items"]] == [farsta]
        assert (await school.get("/v1/school-starts")).json()["total"] == 2
        assert_problem(await school.get("/v1/school-starts", params={"district": "Gotham"}), 422, "query.district")
        assert_problem(await school.get("/v1/school-starts", params={"placement_id": "x"}), 422, "query.placement_id")


def _start(placement_id: str, **fields: Any) -> dict[str, Any]:
    return {"placement_id": placement_id, "start_date": DAY0.isoformat(), "provision": "home_school", **fields}


# (id, path, body builder, status, field); the placement started on DAY0-20, today is DAY0.
BAD_REQUESTS: list[tuple[str, str, Any, int, str]] = [
    (
        "start-before-placement",
        "/v1/school-starts",
        lambda p: _start(p, start_date=(DAY0 - timedelta(days=21)).isoformat()),
        422,
        "body.start_date",
    ),
    (
        # A start may be planned up to 30 days ahead (issue 14); the 31st day is refused.
        "start-past-the-planning-horizon",
        "/v1/school-starts",
        lambda p: _start(p, start_date=(DAY0 + timedelta(days=31)).isoformat()),
        422,
        "body.start_date",
    ),
    (
        "code-7-digits",
        "/v1/school-starts",
        lambda p: _start(p, provision=None, school_unit_code="1234567"),
        422,
        "body.school_unit_code",
    ),
    (
        "code-9-digits",
        "/v1/school-starts",
        lambda p: _start(p, provision=None, school_unit_code="123456789"),
        422,
        "body.school_unit_code",
    ),
    (
        "code-letters",
        "/v1/school-starts",
        lambda p: _start(p, provision=None, school_unit_code="1234567a"),
        422,
        "body.school_unit_code",
    ),
    (
        "code-as-number",
        "/v1/school-starts",
        lambda p: _start(p, provision=None, school_unit_code=12345678),
        422,
        "body.school_unit_code",
    ),
    ("both", "/v1/school-starts", lambda p: _start(p, school_unit_code="12345678"), 422, "body.provision"),
    ("neither", "/v1/school-starts", lambda p: _start(p, provision=None), 422, "body.provision"),
    ("provision-school-unit", "/v1/school-starts", lambda p: _start(p, provision="school_unit"), 422, "body.provision"),
    ("provision-unknown", "/v1/school-starts", lambda p: _start(p, provision="boarding"), 422, "body.provision"),
    ("bad-placement-id", "/v1/school-starts", lambda p: _start("nope"), 422, "body.placement_id"),
    ("start-date-garbage", "/v1/school-starts", lambda p: _start(p, start_date="2025-02-30"), 422, "body.start_date"),
    (
        "end-without-start",
        "/v1/school-ends",
        lambda p: {"placement_id": p, "end_date": DAY0.isoformat(), "reason": "left"},
        409,
        "body.placement_id",
    ),
    (
        "end-reason-unknown",
        "/v1/school-ends",
        lambda p: {"placement_id": p, "end_date": DAY0.isoformat(), "reason": "bored"},
        422,
        "body.reason",
    ),
    (
        "plan-in-future",
        "/v1/school-plans",
        lambda p: {"placement_id": p, "drawn_up_on": (DAY0 + timedelta(days=1)).isoformat()},
        422,
        "body.drawn_up_on",
    ),
    (
        "plan-code-malformed",
        "/v1/school-plans",
        lambda p: {"placement_id": p, "drawn_up_on": DAY0.isoformat(), "planned_school_unit_code": "12"},
        422,
        "body.planned_school_unit_code",
    ),
    (
        "plan-code-with-other-provision",
        "/v1/school-plans",
        lambda p: {
            "placement_id": p,
            "drawn_up_on": DAY0.isoformat(),
            "planned_school_unit_code": "12345678",
            "planned_provision": "home_school",
        },
        422,
        "body.planned_school_unit_code",
    ),
    ("unknown-field", "/v1/school-starts", lambda p: _start(p, school="Rinkebyskolan"), 422, "body.school"),
]


async def test_bad_input_is_refused_by_field_and_nothing_written(service_client, settings, subtests):
    # One app for every case: each start and stop of a consumer costs seconds on the broker.
    placement_id, _ = await plant_placement(settings)
    async with service_client("school") as school:
        for case, path, build, status, field in BAD_REQUESTS:
            with subtests.test(msg=case):
                resp = await school.post(path, json=build(placement_id))
                body = assert_problem(resp, status, field)
                if status == 422:
                    assert body["errors"][0]["field"] == field
                assert await counts(settings) == dict.fromkeys(SCHOOL_TABLES, 0)


async def test_start_after_the_placement_ended_is_refused(service_client, settings):
    placement_id, _ = await plant_placement(settings, end=DAY0 - timedelta(days=5))
    async with service_client("school") as school:
        late = await school.post("/v1/school-starts", json=_start(placement_id))
        assert_problem(late, 422, "body.start_date")
        on_end_day = await school.post(
            "/v1/school-starts", json=_start(placement_id, start_date=(DAY0 - timedelta(days=5)).isoformat())
        )
        assert_problem(on_end_day, 422, "body.start_date")
        before = await school.post(
            "/v1/school-starts", json=_start(placement_id, start_date=(DAY0 - timedelta(days=6)).isoformat())
        )
        assert before.status_code == 201, before.text
    assert await count_rows(settings, "school_start") == 1


async def test_second_start_without_an_end_is_a_conflict(service_client, settings):
    placement_id, _ = await plant_placement(settings)
    async with service_client("school") as school:
        first = await school.post("/v1/school-starts", json=_start(placement_id))
        assert first.status_code == 201, first.text
        second = await school.post(
            "/v1/school-starts",
            json=_start(placement_id, provision=None, school_unit_code="12345678"),
        )
        problem = assert_problem(second, 409, "body.placement_id")
        assert problem["open_school_start_id"] == first.json()["id"]
    assert await counts(settings) == {"school_plan": 0, "school_start": 1, "school_end": 0, "outbox": 1}


async def test_concurrent_starts_only_one_wins(service_client, settings):
    placement_id, _ = await plant_placement(settings)
    async with service_client("school") as school:
        answers = await asyncio.gather(
            *(
                school.post(
                    "/v1/school-starts",
                    json=_start(placement_id, start_date=(DAY0 - timedelta(days=i)).isoformat()),
                )
                for i in range(4)
            )
        )
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 409:
            assert_problem(answer, 409)
    assert await count_rows(settings, "school_start") == 1
    assert await count_rows(settings, "outbox") == 1


async def test_the_database_refuses_a_second_open_start(settings):
    placement_id, child_id = await plant_placement(settings)
    conn = await _connect(settings)
    insert = (
        "INSERT INTO school_start (id, placement_id, child_id, district, start_date, provision, placement_start_date,"
        " school_change) VALUES ($1, $2, $3, 'Farsta', $4, 'home_school', $4, true)"
    )
    try:
        await conn.execute(insert, uuid.uuid4(), uuid.UUID(placement_id), uuid.UUID(child_id), DAY0)
        with pytest.raises(asyncpg.ExclusionViolationError):
            await conn.execute(
                insert, uuid.uuid4(), uuid.UUID(placement_id), uuid.UUID(child_id), DAY0 + timedelta(days=3)
            )
    finally:
        await conn.close()


async def test_end_dates_are_checked(service_client, settings):
    placement_id, _ = await plant_placement(settings)
    async with service_client("school") as school:
        start = await school.post(
            "/v1/school-starts", json=_start(placement_id, start_date=(DAY0 - timedelta(days=10)).isoformat())
        )
        assert start.status_code == 201
        before = await school.post(
            "/v1/school-ends",
            json={"placement_id": placement_id, "end_date": (DAY0 - timedelta(days=11)).isoformat(), "reason": "left"},
        )
        assert_problem(before, 422, "body.end_date")
        future = await school.post(
            "/v1/school-ends",
            json={"placement_id": placement_id, "end_date": (DAY0 + timedelta(days=1)).isoformat(), "reason": "left"},
        )
        assert_problem(future, 422, "body.end_date")
        still_open = (await school.get(f"/v1/school-starts/{start.json()['id']}")).json()
        assert still_open["end_date"] is None
    assert await counts(settings) == {"school_plan": 0, "school_start": 1, "school_end": 0, "outbox": 1}


async def test_unknown_ids_missing_token_and_wrong_role(service_client, tokens):
    async with service_client("school") as school:
        missing = "00000000-0000-4000-8000-000000000000"
        assert_problem(await school.get(f"/v1/school-starts/{missing}"), 404)
        assert_problem(await school.get(f"/v1/school-plans/{missing}"), 404)
        assert_problem(await school.get(f"/v1/school-ends/{missing}"), 404)
        assert_problem(await school.get("/v1/school-starts/not-a-uuid"), 422, "path.start_id")
        no_token = await school.post("/v1/school-starts", json={}, headers={"Authorization": ""})
        assert_problem(no_token, 401)
        health_staff = await school.get("/v1/school-starts", headers=tokens.headers("health_staff"))
        assert_problem(health_staff, 403)
