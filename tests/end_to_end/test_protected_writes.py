"""Who sees a protected field never depends on a field the caller can write, and protection takes
effect everywhere at once (issue 12, findings 2, 4, 5 and 11)."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx

from shared.contracts.topics import TOPIC_SCHOOL
from shared.kernel.settings import Settings
from shared.local.embedded import free_port
from shared.local.migrate import _asyncpg_dsn
from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.support import TopicTail, eventually

LOCATION = "Skyddat boende, Planterad gata 7"


async def sql(settings: Settings, service: str, statement: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url(service)))  # type: ignore[arg-type]
    try:
        return list(await conn.fetch(statement, *args))
    finally:
        await conn.close()


async def plant_view(settings: Settings, service: str, *, protected: bool, district: str = "Farsta") -> str:
    """A placement as a consuming service's local copy holds it, without the bus."""
    placement_id = uuid.uuid4()
    await sql(
        settings,
        service,
        "INSERT INTO placement_view (placement_id, child_id, version, district, form, start_date, school_change,"
        " child_birth_date, protected_identity) VALUES ($1, $2, 1, $3, 'familjehem', $4, true, $5, $6)",
        placement_id,
        uuid.uuid4(),
        district,
        date(2025, 8, 1),
        date(2013, 4, 1),
        protected,
    )
    return str(placement_id)


async def audit_actions(settings: Settings, route: str) -> list[tuple[str, str, str]]:
    rows = await sql(
        settings, "placement", "SELECT subject, action, outcome FROM audit WHERE route = $1 ORDER BY id", route
    )
    return [(r["subject"], r["action"], r["outcome"]) for r in rows]


async def test_naming_oneself_the_responsible_caseworker_does_not_open_a_protected_location(
    service_client: Any, settings: Settings, tokens: Any, clock: Any
) -> None:
    cw = tokens.headers("caseworker", district="Farsta", subject="cw-self")
    manager = tokens.headers("district_manager", district="Farsta", subject="dm-farsta")
    start = clock.today() - timedelta(days=5)
    async with service_client("placement") as client:
        child = (await client.post("/v1/children", json=child_body(1, protected=True))).json()["id"]
        created = await client.post("/v1/placements", json=placement_body(child, start=start, location=LOCATION))
        assert created.status_code == 201, created.text
        pid = created.json()["id"]

        patched = await client.patch(f"/v1/placements/{pid}", json={"caseworker": "cw-self"}, headers=cw)
        assert patched.status_code == 403 and patched.json()["field"] == "body.caseworker", patched.text
        assert LOCATION not in patched.text
        seen = await client.get(f"/v1/placements/{pid}", headers=cw)
        assert seen.json()["caseworker"] is None and seen.json()["location"] is None
        # Nor by recording a new placement that names oneself.
        other = (await client.post("/v1/children", json=child_body(2, protected=True))).json()["id"]
        named = placement_body(other, start=start, location=LOCATION, caseworker="cw-self")
        assert (await client.post("/v1/placements", json=named, headers=cw)).status_code == 403
        # Other corrections stay open to the caseworker.
        fixed = await client.patch(f"/v1/placements/{pid}", json={"school_change": False}, headers=cw)
        assert fixed.status_code == 200 and fixed.json()["location"] is None

        # The district manager names the caseworker; from then on the caseworker sees the location.
        by_manager = await client.patch(f"/v1/placements/{pid}", json={"caseworker": "cw-self"}, headers=manager)
        assert by_manager.status_code == 200, by_manager.text
        assert (await client.get(f"/v1/placements/{pid}", headers=cw)).json()["location"] == LOCATION
    trail = await audit_actions(settings, "/v1/placements/{placement_id}")
    assert ("cw-self", "write:name_caseworker", "denied") in trail
    assert ("dm-farsta", "write:name_caseworker", "allowed") in trail
    assert ("cw-self", "write", "allowed") in trail, "a correction without naming is audited as a plain write"


async def test_only_a_district_manager_or_administrator_lifts_protected_identity(
    service_client: Any, settings: Settings, tokens: Any, clock: Any
) -> None:
    cw = tokens.headers("caseworker", district="Farsta", subject="cw-1")
    manager = tokens.headers("district_manager", district="Farsta", subject="dm-1")
    async with service_client("placement") as client:
        protected = (await client.post("/v1/children", json=child_body(3, protected=True))).json()["id"]
        pid = (
            await client.post(
                "/v1/placements",
                json=placement_body(protected, start=clock.today() - timedelta(days=3), location=LOCATION),
            )
        ).json()["id"]
        lifted = await client.patch(f"/v1/children/{protected}", json={"protected_identity": False}, headers=cw)
        assert lifted.status_code == 403 and lifted.json()["field"] == "body.protected_identity", lifted.text
        assert (await client.get(f"/v1/children/{protected}", headers=cw)).json()["protected_identity"] is True
        assert (await client.get(f"/v1/placements/{pid}", headers=cw)).json()["location"] is None

        # Setting it is the safe direction: open to the caseworker.
        plain = (await client.post("/v1/children", json=child_body(4), headers=cw)).json()["id"]
        flagged = await client.patch(f"/v1/children/{plain}", json={"protected_identity": True}, headers=cw)
        assert flagged.status_code == 200 and flagged.json()["protected_identity"] is True

        by_manager = await client.patch(
            f"/v1/children/{protected}", json={"protected_identity": False}, headers=manager
        )
        assert by_manager.status_code == 200 and by_manager.json()["protected_identity"] is False
    trail = await audit_actions(settings, "/v1/children/{child_id}")
    assert ("cw-1", "write:lift_protection", "denied") in trail
    assert ("dm-1", "write:lift_protection", "allowed") in trail


async def test_a_school_start_right_after_protection_is_set_carries_no_school_unit(
    live_service: Any, service_client: Any, settings: Settings, tokens: Any, clock: Any
) -> None:
    """The school service has seen the placement unprotected and never hears of the flag on the
    bus (another topic prefix for it): the event must still leave the school unit out."""
    today = clock.today()
    isolated_prefix = f"{settings.kafka_topic_prefix}isolated."
    async with live_service("placement") as url:
        async with httpx.AsyncClient(base_url=url, headers=tokens.headers("admin")) as placement:
            ids = {}
            for n, flag_later in ((5, True), (6, False)):
                child = (await placement.post("/v1/children", json=child_body(n))).json()["id"]
                body = placement_body(child, start=today - timedelta(days=8))
                ids[flag_later] = (child, (await placement.post("/v1/placements", json=body)).json()["id"])
            school_settings = {"placement_url": url, "kafka_topic_prefix": isolated_prefix}
            tail_topic = f"{isolated_prefix}{TOPIC_SCHOOL}"
            async with service_client("school", settings_override=school_settings) as school:
                for _, pid in ids.values():
                    plan = {"placement_id": pid, "drawn_up_on": str(today - timedelta(days=7))}
                    assert (await school.post("/v1/school-plans", json=plan)).status_code == 201
                seen = await sql(settings, "school", "SELECT protected_identity FROM placement_view")
                assert [r["protected_identity"] for r in seen] == [False, False], "known here, unprotected"
                flagged = await placement.patch(f"/v1/children/{ids[True][0]}", json={"protected_identity": True})
                assert flagged.status_code == 200
                async with TopicTail(settings.kafka_servers(), tail_topic) as tail:
                    for code, (_, pid) in zip(("11112222", "33334444"), ids.values(), strict=True):
                        start = {"placement_id": pid, "start_date": str(today), "school_unit_code": code}
                        resp = await school.post("/v1/school-starts", json=start)
                        assert resp.status_code == 201, resp.text

                    async def both_started() -> list[dict[str, Any]]:
                        await tail.collect(len(tail.messages) + 1, timeout=0.5)
                        found = [e for e in tail.events() if e["type"] == "obruten.school.started"]
                        return found if len(found) >= 2 else []

                    started = await eventually(both_started, timeout=20)
    units = {e["data"]["placement_id"]: e["data"].get("school_unit_code") for e in started}
    assert units == {ids[True][1]: None, ids[False][1]: "33334444"}
    assert "11112222" not in json.dumps(tail.events())


async def test_without_an_answer_from_the_placement_service_the_child_counts_as_protected(
    service_client: Any, settings: Settings, clock: Any
) -> None:
    down = {"placement_url": f"http://127.0.0.1:{free_port()}"}
    pid = await plant_view(settings, "school", protected=False)
    async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_SCHOOL)) as tail:
        async with service_client("school", settings_override=down) as school:
            start = {"placement_id": pid, "start_date": str(clock.today()), "school_unit_code": "55556666"}
            resp = await school.post("/v1/school-starts", json=start)
            assert resp.status_code == 201 and resp.json()["school_unit_code"] == "55556666", "the record keeps it"
            await tail.collect(1)
    assert [e["data"].get("school_unit_code") for e in tail.events()] == [None]


async def test_a_protected_childs_clinic_is_hidden_from_health_staff_city_wide(
    service_client: Any, settings: Settings, tokens: Any, clock: Any
) -> None:
    staff = tokens.headers("health_staff", subject="nurse-1")
    async with service_client("health") as health:
        exams = {}
        for protected in (True, False):
            pid = await plant_view(settings, "health", protected=protected)
            body = {"placement_id": pid, "kind": "health", "status": "completed", "date": str(clock.today())}
            resp = await health.post("/v1/examinations", json={**body, "provider": f"BVC Planterad {protected}"})
            assert resp.status_code == 201, resp.text
            exams[protected] = resp.json()["id"]

        async def provider_as(headers: dict[str, str], exam: str) -> Any:
            one = (await health.get(f"/v1/examinations/{exam}", headers=headers)).json()["provider"]
            listed = (await health.get("/v1/examinations", headers=headers)).json()["items"]
            assert [e["provider"] for e in listed if e["id"] == exam] == [one]
            return one

        assert await provider_as(staff, exams[True]) is None
        assert await provider_as(staff, exams[False]) == "BVC Planterad False"
        assert await provider_as(tokens.headers("admin"), exams[True]) == "BVC Planterad True"
        pid = await plant_view(settings, "health", protected=True)
        recorded = await health.post(
            "/v1/examinations",
            json={
                "placement_id": pid,
                "kind": "dental",
                "status": "booked",
                "date": str(clock.today()),
                "provider": "X",
            },
            headers=staff,
        )
        assert recorded.status_code == 201 and recorded.json()["provider"] is None, "not even in the write's answer"
