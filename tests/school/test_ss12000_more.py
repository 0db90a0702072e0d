"""The SS 12000 intake's edges: the caseworker's records, protection, several sources, restarts,
push, OAuth2, configuration, the pupil keys' access, and the stand-in's own validation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn

from services.school.app import create_app
from services.school.ss12000.settings import IntakeSettings, SourcesError, parse_sources
from shared.contracts.topics import TOPIC_SCHOOL
from shared.kernel.pupil_key import normalise_civic_no, pupil_key
from shared.local.embedded import free_port
from tests.fixtures.ss12000.standin import StandIn, serve
from tests.fixtures.support import TopicTail, eventually, service_app
from tests.school.test_ss12000 import (
    DAY0,
    KEYED,
    MATCH_KEY,
    enrolment,
    placed_children,
    publish_others,
    school_rows,
    school_settings,
    source,
    starts_of,
    syncs,
)


def test_civic_numbers_are_normalised_to_twelve_ascii_digits_before_hashing() -> None:
    assert normalise_civic_no("201304011008") == "201304011008"
    assert normalise_civic_no(" 20130401-1008 ") == "201304011008"
    for bad in ("1304011008", "20130101TF01", "２０１３０４０１１００８", "2013040110080", None, 201304011008):
        assert normalise_civic_no(bad) is None
    key = pupil_key(b"k" * 32, "201304011008")
    assert len(key) == 64 and key != pupil_key(b"j" * 32, "201304011008")
    with pytest.raises(ValueError):
        pupil_key(b"k" * 32, "20130401-1008")


def test_a_malformed_source_list_is_refused_naming_the_entry_and_never_a_secret() -> None:
    with pytest.raises(SourcesError) as err:
        parse_sources([{"name": "a", "url": "https://x/v2.0", "token": "t"}, {"name": "b", "url": "https://y"}])
    assert "SOURCES[1]" in str(err.value) and "token" in str(err.value)
    with pytest.raises(SourcesError) as err:
        parse_sources([{"name": "a", "url": "https://x", "token": "sekret-token", "client_id": "c"}])
    assert "sekret-token" not in str(err.value)
    with pytest.raises(SourcesError):
        parse_sources(
            [{"name": "a", "url": "https://x", "token": "t"}, {"name": "a", "url": "https://y", "token": "t"}]
        )


def test_the_school_service_does_not_start_on_a_malformed_source_list(settings) -> None:
    with pytest.raises(SourcesError):
        create_app(settings, service_settings=IntakeSettings(sources=[{"name": "Bad Name!", "url": "x"}]))


async def test_the_standin_itself_refuses_an_answer_that_breaks_the_standard() -> None:
    standin = StandIn()
    standin.persons["not-a-uuid"] = {
        "id": "not-a-uuid",
        "meta": {"modified": "2025-09-01T10:00:00+00:00"},
        "givenName": "A",
        "civicNo": "201304011008",
    }
    async with serve(standin), httpx.AsyncClient() as client:
        resp = await client.get(f"{standin.url}/persons", headers={"Authorization": "Bearer standin-token"})
        assert resp.status_code == 200
        no_token = await client.get(f"{standin.url}/persons")
        await client.get(
            f"{standin.url}/persons", params={"limit": "0"}, headers={"Authorization": "Bearer standin-token"}
        )
    assert no_token.status_code == 403
    answers = [v for v in standin.violations if v.startswith("response 200")]
    requests = [v for v in standin.violations if v.startswith("request")]
    assert len(answers) == 1 and "uuid" in answers[0] and "familyName" in answers[0], answers
    assert len(requests) == 2 and "Security" in requests[0] and "limit" in requests[1], requests


async def test_pupil_keys_are_for_the_service_account_only_and_never_cached(live_service, tokens):
    async with placed_children(live_service, tokens, DAY0 - timedelta(days=3)) as (url, [(placement_id, pnr)]):
        async with httpx.AsyncClient(base_url=url) as client:
            for role in ("admin", "caseworker", "district_manager", "school_coordinator", "central_analyst"):
                resp = await client.get("/v1/pupil-keys", headers=tokens.headers(role, district="Farsta"))
                assert resp.status_code == 403, role
            resp = await client.get("/v1/pupil-keys", headers=tokens.headers("service"))
    assert resp.status_code == 200 and resp.headers["cache-control"] == "no-store"
    [item] = resp.json()["items"]
    assert item == {
        "placement_id": placement_id,
        "child_id": item["child_id"],
        "start_date": str(DAY0 - timedelta(days=3)),
        "end_date": None,
        "key": pupil_key(MATCH_KEY.encode(), pnr),
    }
    assert pnr not in resp.text and pnr[2:] not in resp.text


async def test_pupil_keys_without_a_match_key_are_503(service_client):
    async with service_client("placement", role="service") as placement:
        resp = await placement.get("/v1/pupil-keys")
    assert resp.status_code == 503 and resp.json()["type"].endswith("match-key-unset")


async def test_a_caseworkers_start_stands_and_the_sources_is_kept_beside_it(
    service_client, live_service, settings, tokens, clock
):
    standin = StandIn()
    org = standin.add_school_unit("12345678", "Skolan")
    other = standin.add_school_unit("11112222", "Annan")
    start = DAY0 - timedelta(days=10)
    async with serve(standin), placed_children(live_service, tokens, start, start) as (url, [(a, pnr_a), (b, pnr_b)]):
        async with service_client(
            "school", settings_override=school_settings(url, source(standin), poll=0.5)
        ) as school:
            for placement_id in (a, b):
                typed = await school.post(
                    "/v1/school-starts",
                    json={
                        "placement_id": placement_id,
                        "start_date": str(DAY0 - timedelta(days=3)),
                        "school_unit_code": "12345678",
                    },
                )
                assert typed.status_code == 201, typed.text
            # A's school agrees with the caseworker; B's names another day and school.
            standin.put_person(str(uuid.uuid4()), pnr_a, [enrolment(org, DAY0 - timedelta(days=3))])
            standin.put_person(str(uuid.uuid4()), pnr_b, [enrolment(other, DAY0 - timedelta(days=1))])

            async def seen() -> list[dict[str, Any]]:
                rows = await school_rows(settings, "SELECT * FROM ss12000_enrolment ORDER BY start_date")
                return rows if len(rows) == 2 and all(r["outcome"] != "pending" for r in rows) else []

            agreeing, other_day = await eventually(seen, timeout=20)
            [start_a], [start_b] = await starts_of(school, a), await starts_of(school, b)
            assert (agreeing["outcome"], str(agreeing["school_start_id"])) == ("agrees", start_a["id"])
            assert (other_day["outcome"], other_day["school_unit_code"]) == ("superseded", "11112222")
            assert other_day["reason"] == "open start by caseworker"
            assert str(other_day["school_start_id"]) == start_b["id"]
            assert start_a["provenance"] == start_b["provenance"] == "caseworker"
            assert start_b["start_date"] == str(DAY0 - timedelta(days=3))

            # The caseworker finds their own record of B wrong and withdraws it (a school end on
            # its first day): the school's enrolment then becomes the start.
            withdraw = {"placement_id": b, "end_date": start_b["start_date"], "reason": "other"}
            assert (await school.post("/v1/school-ends", json=withdraw)).status_code == 201

            async def from_source() -> list[dict[str, Any]]:
                return [s for s in await starts_of(school, b) if s["provenance"] == "ss12000:kommun"]

            [corrected] = await eventually(from_source, timeout=20)
            assert (corrected["start_date"], corrected["school_unit_code"]) == (
                str(DAY0 - timedelta(days=1)),
                "11112222",
            )

            # And corrects the source's start to an earlier day and another school: allowed, since
            # the withdrawn start was never attended; the source does not put its own back.
            withdraw = {"placement_id": b, "end_date": corrected["start_date"], "reason": "other"}
            assert (await school.post("/v1/school-ends", json=withdraw)).status_code == 201
            earlier = {"placement_id": b, "start_date": str(DAY0 - timedelta(days=2)), "school_unit_code": "12345678"}
            typed = await school.post("/v1/school-starts", json=earlier)
            assert typed.status_code == 201, typed.text
            done = len(await syncs(settings, "ok"))
            await eventually(lambda: _at_least_ok(settings, done + 2), timeout=20)
            history = await starts_of(school, b)
    assert [
        (s["start_date"], s["provenance"], s["end_date"]) for s in sorted(history, key=lambda s: s["created_at"])
    ] == [
        (str(DAY0 - timedelta(days=3)), "caseworker", str(DAY0 - timedelta(days=3))),
        (str(DAY0 - timedelta(days=1)), "ss12000:kommun", str(DAY0 - timedelta(days=1))),
        (str(DAY0 - timedelta(days=2)), "caseworker", None),
    ]


async def test_a_protected_childs_school_unit_never_reaches_an_event(
    service_client, live_service, settings, tokens, clock
):
    standin = StandIn()
    org = standin.add_school_unit("12345678", "Skolan")
    async with serve(standin), live_service("placement", settings_override=KEYED) as url:
        async with httpx.AsyncClient(base_url=url, headers=tokens.headers("admin")) as placement:
            body = {"personnummer": "20130401-1008", "district": "Farsta", "protected_identity": True}
            child_id = (await placement.post("/v1/children", json=body)).json()["id"]
            placement_id = (
                await placement.post(
                    "/v1/placements",
                    json={
                        "child_id": child_id,
                        "district": "Farsta",
                        "form": "familjehem",
                        "legal_basis": "SoL",
                        "start_date": str(DAY0 - timedelta(days=5)),
                        "school_change": True,
                    },
                )
            ).json()["id"]
        standin.put_person(str(uuid.uuid4()), "201304011008", [enrolment(org, DAY0 - timedelta(days=1))])
        async with (
            TopicTail(settings.kafka_servers(), settings.topic(TOPIC_SCHOOL)) as tail,
            service_client(
                "school",
                role="caseworker",
                district="Farsta",
                settings_override=school_settings(url, source(standin), poll=0.5),
            ) as school,
        ):
            [start] = await eventually(lambda: starts_of(school, placement_id), timeout=20)
            await tail.collect(1)
    assert start["provenance"] == "ss12000:kommun" and start["school_unit_code"] is None  # withheld from this role
    [event] = tail.events()
    assert event["type"] == "obruten.school.started" and event["data"]["school_unit_code"] is None
    assert "12345678" not in json.dumps(event)
    rows = await school_rows(settings, "SELECT school_unit_code FROM school_start")
    assert rows == [{"school_unit_code": "12345678"}]  # kept for the teaching team


async def test_a_dead_slow_refusing_or_endlessly_paging_source_does_not_hold_up_another(
    service_client, live_service, settings, tokens, clock
):
    good, slow, looping = StandIn(), StandIn(), StandIn()
    org = good.add_school_unit("12345678", "Skolan")
    slow.faults.delay = 3
    publish_others(looping, looping.add_school_unit("87654321", "Annan"), 100)
    looping.faults.repeat_token = True
    async with (
        serve(good),
        serve(slow),
        serve(looping),
        placed_children(live_service, tokens, DAY0 - timedelta(days=4)) as (url, [(a, pnr)]),
    ):
        good.put_person(str(uuid.uuid4()), pnr, [enrolment(org, DAY0)])
        sources = [
            {"name": "nere", "url": f"http://127.0.0.1:{free_port()}/v2.0", "token": "t", "timeout_seconds": 1},
            source(slow, "seg", timeout_seconds=1),
            source(good, "fel-nyckel", token="wrong"),
            source(looping, "slinga"),
            source(good),
        ]
        async with service_client("school", settings_override=school_settings(url, *sources, poll=0.5)) as school:
            [start] = await eventually(lambda: starts_of(school, a), timeout=20)
            for name in ("nere", "seg", "fel-nyckel", "slinga"):
                await eventually(lambda name=name: _failed(settings, name), timeout=30)
            metrics = (await school.get("/metrics")).text
    assert start["provenance"] == "ss12000:kommun"
    errors = {r["source"]: r["error"] for r in await syncs(settings, "failed")}
    assert errors == {"nere": "connect", "seg": "timeout", "fel-nyckel": "http-403", "slinga": "paging"}
    assert 'obruten_ss12000_sync_errors_total{kind="connect",source="nere"}' in metrics
    assert 'obruten_ss12000_sync_errors_total{kind="timeout",source="seg"}' in metrics
    assert 'obruten_ss12000_last_success_timestamp_seconds{source="kommun"}' in metrics
    assert 'obruten_ss12000_last_success_timestamp_seconds{source="nere"}' not in metrics
    assert good.violations == slow.violations == looping.violations == []


async def test_a_malformed_entity_is_skipped_and_the_rest_of_the_change_set_applied(
    service_client, live_service, settings, tokens, clock
):
    standin = StandIn()
    org = standin.add_school_unit("12345678", "Skolan")
    publish_others(standin, org, 10)
    standin.put_person(str(uuid.uuid4()), "x", [{"enroledAt": {"id": "nope"}, "schoolType": "GR", "startDate": "?"}])
    async with serve(standin), placed_children(live_service, tokens, DAY0 - timedelta(days=4)) as (url, [(a, pnr)]):
        standin.put_person(str(uuid.uuid4()), pnr, [enrolment(org, DAY0)])
        async with service_client(
            "school", settings_override=school_settings(url, source(standin), poll=0.5)
        ) as school:
            [start] = await eventually(lambda: starts_of(school, a), timeout=20)
    [run] = await syncs(settings, "ok")
    assert (run["entities"], run["malformed"], run["matches"]) == (12, 1, 1)
    assert start["provenance"] == "ss12000:kommun"
    # The one entity that breaks the standard is the one put there on purpose.
    assert len(standin.violations) == 1 and "'nope' is not a 'uuid'" in standin.violations[0]


async def _failed(settings: Any, name: str) -> bool:
    return any(r["source"] == name for r in await syncs(settings, "failed"))


async def test_a_restart_resumes_from_the_stored_position(service_client, live_service, settings, tokens, clock):
    standin = StandIn()
    elsewhere = standin.add_school_unit("87654321", "Annan")
    publish_others(standin, elsewhere, 50)
    async with serve(standin), placed_children(live_service, tokens, DAY0 - timedelta(days=4)) as (url, _):
        overrides = school_settings(url, source(standin), poll=60)
        async with service_client("school", settings_override=overrides):
            await eventually(lambda: syncs(settings, "ok"), timeout=20)
        newest = max(p["meta"]["modified"] for p in standin.persons.values())
        standin.log.clear()
        publish_others(standin, elsewhere, 5, offset=100)
        async with service_client("school", settings_override=overrides):
            await eventually(lambda: _at_least_ok(settings, 2), timeout=20)
    [first, *_] = [r for r in standin.log if r.path.endswith("/persons")]
    after = httpx.QueryParams(first.query)["meta.modified.after"]
    assert after.replace("+00:00", "") == newest.replace("+00:00", "")
    runs = await syncs(settings, "ok")
    assert [r["entities"] for r in runs] == [50, 5]


async def _at_least_ok(settings: Any, n: int) -> bool:
    return len(await syncs(settings, "ok")) >= n


@contextlib.asynccontextmanager
async def school_on_port(settings: Any, clock: Any, port: int, overrides: dict[str, Any]) -> AsyncIterator[str]:
    """The school service under uvicorn on a chosen port (a push target must be known up front)."""
    app = service_app("school", settings, clock, {**overrides, "school_port": port})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_a_push_from_the_source_wakes_the_intake_and_oauth2_client_credentials_work(
    live_service, settings, tokens, clock
):
    standin = StandIn()
    org = standin.add_school_unit("12345678", "Skolan")
    port = free_port()
    async with serve(standin), placed_children(live_service, tokens, DAY0 - timedelta(days=4)) as (url, [(a, pnr)]):
        oauth = {
            "name": "friskola",
            "url": standin.url,
            "token_url": standin.url.replace("/v2.0", "/oauth/token"),
            "client_id": "obruten",
            "client_secret": "standin-secret",
            "scope": "ss12000",
            "push_target": f"http://127.0.0.1:{port}/ss12000/push/friskola",
        }
        # Polling once an hour: only the push can bring the enrolment in during this test.
        async with (
            school_on_port(settings, clock, port, school_settings(url, oauth, poll=3600)) as school_url,
            httpx.AsyncClient(base_url=school_url, headers=tokens.headers("admin")) as school,
        ):
            await eventually(lambda: syncs(settings, "ok"), timeout=20)
            assert [s["resourceTypes"] for s in standin.subscriptions] == [[{"resource": "Person"}]]
            standin.put_person(str(uuid.uuid4()), pnr, [enrolment(org, DAY0 - timedelta(days=1))])
            await standin.publish()
            [start] = await eventually(lambda: starts_of(school, a), timeout=10)
            unknown = await school.post("/ss12000/push/nobody", json={})
    assert start["provenance"] == "ss12000:friskola"
    assert unknown.status_code == 404
    token_requests = [r for r in standin.log if r.path == "/oauth/token"]
    assert token_requests and all("client_credentials" in r.body for r in token_requests)
    assert all(
        r.headers["authorization"].startswith("Bearer ") and r.headers["authorization"] != "Bearer standin-token"
        for r in standin.log
        if r.path.startswith("/v2.0")
    )
    assert standin.violations == []


async def test_a_source_limited_to_some_organisations_ignores_enrolments_elsewhere(
    service_client, live_service, settings, tokens, clock
):
    standin = StandIn()
    kept = standin.add_school_unit("12345678", "Skolan")
    elsewhere = standin.add_school_unit("87654321", "Annan")
    start = DAY0 - timedelta(days=4)
    async with serve(standin), placed_children(live_service, tokens, start, start) as (url, [(a, pnr_a), (b, pnr_b)]):
        standin.put_person(str(uuid.uuid4()), pnr_a, [enrolment(elsewhere, DAY0 - timedelta(days=1))])
        standin.put_person(str(uuid.uuid4()), pnr_b, [enrolment(kept, DAY0 - timedelta(days=1))])
        limited = source(standin, organisations=[kept])
        async with service_client("school", settings_override=school_settings(url, limited, poll=0.5)) as school:
            [start_b] = await eventually(lambda: starts_of(school, b), timeout=20)
            assert await starts_of(school, a) == []
    assert start_b["school_unit_code"] == "12345678"
    [run] = [r for r in await syncs(settings, "ok") if r["matches"]]
    assert run["matches"] == 2  # both children were recognised; only one enrolment was kept
    stored = await school_rows(settings, "SELECT placement_id FROM ss12000_enrolment")
    assert [str(r["placement_id"]) for r in stored] == [b]


async def test_reading_the_same_changes_again_writes_nothing_twice(
    service_client, live_service, settings, tokens, clock
):
    standin = StandIn()
    org = standin.add_school_unit("12345678", "Skolan")
    publish_others(standin, org, 30)
    async with serve(standin), placed_children(live_service, tokens, DAY0 - timedelta(days=4)) as (url, [(a, pnr)]):
        standin.put_person(str(uuid.uuid4()), pnr, [enrolment(org, DAY0 - timedelta(days=1))])
        # An hour's overlap: every sync reads the whole (millisecond-stamped) feed again.
        overlapping = source(standin, overlap_seconds=3600)
        async with service_client("school", settings_override=school_settings(url, overlapping, poll=0.5)) as school:
            await eventually(lambda: _at_least_ok(settings, 4), timeout=30)
            starts = await starts_of(school, a)
    assert [r["entities"] for r in (await syncs(settings, "ok"))[:4]] == [31] * 4
    assert len(starts) == 1 and starts[0]["provenance"] == "ss12000:kommun"
    assert len(await school_rows(settings, "SELECT id FROM ss12000_enrolment")) == 1
    assert len(await school_rows(settings, "SELECT id FROM outbox")) == 1
