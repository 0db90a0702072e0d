"""The placement service over HTTP, on a real PostgreSQL, with its events on a real broker."""

from __future__ import annotations

import json
from datetime import date, timedelta

import asyncpg
import pytest

from services.placement.settings import PlacementSettings
from shared.contracts.topics import TOPIC_PLACEMENT
from shared.kernel.settings import Settings
from shared.local.migrate import _asyncpg_dsn
from tests.fixtures.factories import child_body, luhn_pnr, placement_body
from tests.fixtures.support import TopicTail

DAY0 = date(2025, 9, 1)


async def count_rows(settings: Settings, table: str) -> int:
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("placement")))  # type: ignore[arg-type]
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


def assert_problem(resp, status: int, field: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"]
    if field is not None:
        assert body["field"] == field, body
    return body


async def test_child_and_placement_are_created_and_announced_without_personal_data(service_client, settings):
    async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_PLACEMENT)) as tail:
        async with service_client("placement") as client:
            body = child_body(1)
            child = await client.post("/v1/children", json=body)
            assert child.status_code == 201, child.text
            child_id = child.json()["id"]
            assert child.json()["birth_date"] == "2013-04-02"
            placement = await client.post(
                "/v1/placements",
                json=placement_body(child_id, start=DAY0, location="Familjehemmet Eriksson, Gnesta"),
            )
            assert placement.status_code == 201, placement.text
            messages = await tail.collect(1)
    assert len(messages) == 1
    raw = messages[0].value.decode()
    event = json.loads(raw)
    assert event["specversion"] == "1.0"
    assert event["type"] == "obruten.placement.started"
    assert event["source"] == "/obruten/placement"
    assert event["subject"] == child_id
    assert messages[0].key.decode() == child_id
    assert event["data"]["placement_id"] == placement.json()["id"]
    assert event["data"]["school_change"] is True
    assert event["data"]["child_birth_date"] == "2013-04-02"
    number = body["personnummer"]
    for needle in (number, number.replace("-", ""), number[2:], "Eriksson", "Gnesta"):
        assert needle not in raw


async def test_lookup_by_personnummer_is_a_post(service_client):
    async with service_client("placement") as client:
        body = child_body(2)
        created = (await client.post("/v1/children", json=body)).json()
        found = await client.post("/v1/children/lookup", json={"personnummer": body["personnummer"].replace("-", "")})
        assert found.status_code == 200
        assert found.json()["id"] == created["id"]
        missing = await client.post("/v1/children/lookup", json={"personnummer": luhn_pnr(date(2014, 1, 1), 555)})
        assert_problem(missing, 404)


@pytest.mark.parametrize(
    "personnummer,reason",
    [
        ("20150312-2384", "check digit"),
        ("20150230-2383", "impossible date"),
        ("hello", "format"),
        (luhn_pnr(date(2030, 1, 1), 123), "birth in the future"),
    ],
)
async def test_invalid_personnummer_is_refused_and_nothing_written(service_client, settings, personnummer, reason):
    async with service_client("placement") as client:
        resp = await client.post("/v1/children", json={"personnummer": personnummer, "district": "Farsta"})
        body = assert_problem(resp, 422, "body.personnummer")
        assert personnummer not in resp.text, "the number must not be echoed"
        assert body["errors"][0]["field"] == "body.personnummer"
    assert await count_rows(settings, "child") == 0


async def test_duplicate_child_is_a_conflict(service_client):
    async with service_client("placement") as client:
        body = child_body(3)
        first = await client.post("/v1/children", json=body)
        again = await client.post("/v1/children", json=body)
        problem = assert_problem(again, 409, "body.personnummer")
        assert problem["existing_id"] == first.json()["id"]


async def test_unknown_district_and_form_are_named(service_client):
    async with service_client("placement") as client:
        assert_problem(
            await client.post("/v1/children", json={**child_body(4), "district": "Gotham"}), 422, "body.district"
        )
        child_id = (await client.post("/v1/children", json=child_body(4))).json()["id"]
        assert_problem(
            await client.post("/v1/placements", json=placement_body(child_id, start=DAY0, form="castle")),
            422,
            "body.form",
        )
        assert_problem(
            await client.post("/v1/placements", json=placement_body(child_id, start=DAY0, district="Gotham")),
            422,
            "body.district",
        )


async def test_overlapping_placement_is_refused_and_nothing_written(service_client, settings):
    async with service_client("placement") as client:
        child_id = (await client.post("/v1/children", json=child_body(5))).json()["id"]
        first = await client.post("/v1/placements", json=placement_body(child_id, start=DAY0))
        assert first.status_code == 201
        later = await client.post("/v1/placements", json=placement_body(child_id, start=DAY0 + timedelta(days=30)))
        problem = assert_problem(later, 409, "body.start_date")
        assert problem["conflicting_placement_id"] == first.json()["id"]
        assert "/end" in problem["detail"]
    assert await count_rows(settings, "placement") == 1
    assert await count_rows(settings, "outbox") == 1


async def test_end_before_start_is_refused_and_nothing_written(service_client, settings):
    async with service_client("placement") as client:
        child_id = (await client.post("/v1/children", json=child_body(6))).json()["id"]
        placement = (await client.post("/v1/placements", json=placement_body(child_id, start=DAY0))).json()
        resp = await client.post(
            f"/v1/placements/{placement['id']}/end",
            json={"end_date": (DAY0 - timedelta(days=1)).isoformat(), "end_reason": "care_plan"},
        )
        assert_problem(resp, 422, "body.end_date")
        again = await client.get(f"/v1/placements/{placement['id']}")
        assert again.json()["end_date"] is None
    assert await count_rows(settings, "outbox") == 1


async def test_start_date_checks(service_client, clock):
    async with service_client("placement") as client:
        child_id = (await client.post("/v1/children", json=child_body(7))).json()["id"]
        far = clock.today() + timedelta(days=settings_max_future() + 1)
        assert_problem(
            await client.post("/v1/placements", json=placement_body(child_id, start=far)), 422, "body.start_date"
        )
        assert_problem(
            await client.post("/v1/placements", json=placement_body(child_id, start=date(2010, 1, 1))),
            422,
            "body.start_date",
        )
        assert_problem(
            await client.post(
                "/v1/placements", json=placement_body(child_id, start=DAY0, planned_end_date="2025-08-01")
            ),
            422,
            "body.planned_end_date",
        )
        assert_problem(await client.post("/v1/placements", json={"child_id": child_id}), 422)


def settings_max_future() -> int:
    return PlacementSettings().max_future_start_days


async def test_unknown_ids_are_404(service_client):
    async with service_client("placement") as client:
        missing = "00000000-0000-4000-8000-000000000000"
        assert_problem(await client.get(f"/v1/children/{missing}"), 404)
        assert_problem(await client.get(f"/v1/placements/{missing}"), 404)
        assert_problem(
            await client.post("/v1/placements", json=placement_body(missing, start=DAY0)), 404, "body.child_id"
        )
        assert_problem(
            await client.post(f"/v1/placements/{missing}/end", json={"end_date": "2025-09-01", "end_reason": "other"}),
            404,
        )
        assert_problem(await client.get("/v1/placements/not-a-uuid"), 422, "path.placement_id")


async def test_end_then_new_placement_and_events_in_order(service_client, settings, clock):
    async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_PLACEMENT)) as tail:
        async with service_client("placement") as client:
            child_id = (await client.post("/v1/children", json=child_body(8))).json()["id"]
            p1 = (
                await client.post("/v1/placements", json=placement_body(child_id, start=DAY0 - timedelta(days=40)))
            ).json()
            ended = await client.post(
                f"/v1/placements/{p1['id']}/end",
                json={"end_date": (DAY0 - timedelta(days=10)).isoformat(), "end_reason": "breakdown"},
            )
            assert ended.status_code == 200, ended.text
            assert ended.json()["version"] == 2
            again = await client.post(
                f"/v1/placements/{p1['id']}/end", json={"end_date": DAY0.isoformat(), "end_reason": "other"}
            )
            assert_problem(again, 409)
            p2 = await client.post(
                "/v1/placements", json=placement_body(child_id, start=DAY0 - timedelta(days=10), form="hvb")
            )
            assert p2.status_code == 201, p2.text
            await tail.collect(3)
    events = tail.events()
    assert [e["type"] for e in events] == [
        "obruten.placement.started",
        "obruten.placement.ended",
        "obruten.placement.started",
    ]
    assert events[1]["data"]["end_reason"] == "breakdown" and events[1]["data"]["version"] == 2


async def test_move_ends_and_starts_atomically(service_client, settings):
    async with service_client("placement") as client:
        child_id = (await client.post("/v1/children", json=child_body(9))).json()["id"]
        p1 = (
            await client.post(
                "/v1/placements", json=placement_body(child_id, start=DAY0 - timedelta(days=20), form="jourhem")
            )
        ).json()
        move_day = DAY0 - timedelta(days=5)
        bad = await client.post(
            f"/v1/placements/{p1['id']}/move",
            json={
                "move_date": move_day.isoformat(),
                "next": {**placement_body(child_id, start=move_day, district="Atlantis"), "child_id": None},
            },
        )
        assert bad.status_code == 422
        still = (await client.get(f"/v1/placements/{p1['id']}")).json()
        assert still["end_date"] is None, "a refused move must not end the old placement"
        next_body = placement_body(child_id, start=move_day, form="familjehem")
        del next_body["child_id"]
        moved = await client.post(
            f"/v1/placements/{p1['id']}/move", json={"move_date": move_day.isoformat(), "next": next_body}
        )
        assert moved.status_code == 201, moved.text
        assert moved.json()["ended"]["end_reason"] == "moved"
        assert moved.json()["started"]["previous_placement_id"] == p1["id"]
    assert await count_rows(settings, "outbox") == 3


async def test_list_filters(service_client):
    async with service_client("placement") as client:
        a = (await client.post("/v1/children", json=child_body(10))).json()["id"]
        b = (await client.post("/v1/children", json=child_body(11, district="Bromma"))).json()["id"]
        await client.post("/v1/placements", json=placement_body(a, start=DAY0 - timedelta(days=100), form="hvb"))
        pb = (
            await client.post(
                "/v1/placements", json=placement_body(b, start=DAY0 - timedelta(days=50), district="Bromma")
            )
        ).json()
        await client.post(
            f"/v1/placements/{pb['id']}/end",
            json={"end_date": (DAY0 - timedelta(days=10)).isoformat(), "end_reason": "care_plan"},
        )
        farsta = (await client.get("/v1/placements", params={"district": "Farsta"})).json()
        assert [p["child_id"] for p in farsta["items"]] == [a] and farsta["total"] == 1
        assert (await client.get("/v1/placements", params={"form": "hvb"})).json()["total"] == 1
        active = (await client.get("/v1/placements", params={"active_on": DAY0.isoformat()})).json()
        assert [p["child_id"] for p in active["items"]] == [a]
        earlier = (
            await client.get("/v1/placements", params={"active_on": (DAY0 - timedelta(days=20)).isoformat()})
        ).json()
        assert earlier["total"] == 2
        assert_problem(await client.get("/v1/placements", params={"district": "Gotham"}), 422, "query.district")


async def test_every_route_needs_a_token(service_client, tokens):
    async with service_client("placement") as client:
        for method, path in [
            ("GET", "/v1/placements"),
            ("POST", "/v1/children"),
            ("GET", "/v1/children/00000000-0000-4000-8000-000000000000"),
        ]:
            resp = await client.request(method, path, headers={"Authorization": ""})
            assert_problem(resp, 401)
            assert resp.headers["www-authenticate"].startswith("Bearer")
        bad = await client.get("/v1/placements", headers={"Authorization": "Bearer not.a.token"})
        assert_problem(bad, 401)
        expired = await client.get("/v1/placements", headers={"Authorization": f"Bearer {tokens('admin', ttl=-60)}"})
        assert_problem(expired, 401)
        health = await client.get("/healthz", headers={"Authorization": ""})
        assert health.status_code == 200


async def test_control_characters_and_huge_offsets_are_422_not_500(service_client, settings):
    async with service_client("placement") as client:
        child_id = (await client.post("/v1/children", json=child_body(12))).json()["id"]
        resp = await client.post("/v1/placements", json=placement_body(child_id, start=DAY0, location="Gnesta\x00"))
        assert_problem(resp, 422, "body.location")
        assert_problem(await client.get("/v1/placements", params={"offset": 2**63}), 422, "query.offset")
    assert await count_rows(settings, "placement") == 0


async def test_a_child_born_on_29_february_can_be_placed(service_client):
    async with service_client("placement") as client:
        child = await client.post("/v1/children", json=child_body(13, birth=date(2012, 2, 29)))
        assert child.status_code == 201, child.text
        resp = await client.post("/v1/placements", json=placement_body(child.json()["id"], start=DAY0))
        assert resp.status_code == 201, resp.text
        late = await client.post("/v1/placements", json=placement_body(child.json()["id"], start=date(2033, 3, 1)))
        assert_problem(late, 422, "body.start_date")
