"""The SS 12000 intake against a stand-in school system whose every answer is validated against
the standard (tests/fixtures/ss12000/standin.py), with the real placement, school and notify services on
a real PostgreSQL and broker."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr

from services.notify.app import evaluate
from shared.kernel.pupil_key import pupil_key
from shared.kernel.settings import Settings
from shared.local.migrate import _asyncpg_dsn
from tests.fixtures.factories import child_body, luhn_pnr, placement_body
from tests.fixtures.notify import alerts, consumed
from tests.fixtures.ss12000.standin import TOKEN, StandIn, serve
from tests.fixtures.support import eventually

DAY0 = date(2025, 9, 1)  # the clock fixture's today
MATCH_KEY = "test-match-key-" + "x" * 32
KEYED = {"ss12000_match_key": SecretStr(MATCH_KEY)}
NO_PREWARNING = {"notify_tick_interval_seconds": 3600, "notify_rules": {"school_gap": {"prewarning_day": None}}}
POLL = 3.0


def other_pupil(n: int) -> str:
    """Another municipality's pupil: a valid number no placed child has."""
    return luhn_pnr(date(2010, 1, 1) + timedelta(days=n % 3000), 500 + n % 400).replace("-", "")


def enrolment(org: str, start: date, *, end: date | None = None, cancelled: bool | None = None) -> dict[str, Any]:
    e: dict[str, Any] = {"enroledAt": {"id": org}, "schoolType": "GR", "startDate": start.isoformat(), "schoolYear": 6}
    if end is not None:
        e["endDate"] = end.isoformat()
    if cancelled is not None:
        e["cancelled"] = cancelled
    return e


def publish_others(standin: StandIn, org: str, count: int, *, offset: int = 0) -> None:
    for n in range(offset, offset + count):
        standin.put_person(
            f"00000000-0000-4000-8000-{n:012d}", other_pupil(n), [enrolment(org, DAY0 - timedelta(days=n % 40))]
        )


def source(standin: StandIn, name: str = "kommun", **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": standin.url, "token": TOKEN, "page_size": 40, "timeout_seconds": 5, **extra}


async def school_rows(settings: Settings, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("school")))  # type: ignore[arg-type]
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def school_dump(settings: Settings) -> str:
    """Every row of every table of the school service's database, as text."""
    tables = await school_rows(settings, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    out = []
    for t in tables:
        out.extend(str(r) for r in await school_rows(settings, f'SELECT * FROM "{t["tablename"]}"'))
    return "\n".join(out)


@contextlib.asynccontextmanager
async def placed_children(
    live_service: Any, tokens: Any, *starts: date
) -> AsyncIterator[tuple[str, list[tuple[str, str]]]]:
    """The placement service on a real port, with one child placed from each start: its URL,
    and per child the placement id and the 12-digit personnummer."""
    async with live_service("placement", settings_override=KEYED) as url:
        placed = []
        async with httpx.AsyncClient(base_url=url, headers=tokens.headers("admin")) as placement:
            for n, start in enumerate(starts):
                body = child_body(n)
                child = await placement.post("/v1/children", json=body)
                assert child.status_code == 201, child.text
                created = await placement.post(
                    "/v1/placements", json=placement_body(child.json()["id"], start=start, form="jourhem")
                )
                assert created.status_code == 201, created.text
                placed.append((created.json()["id"], body["personnummer"].replace("-", "")))
        yield url, placed


def school_settings(url: str, *sources: dict[str, Any], poll: float = POLL) -> dict[str, Any]:
    return {**KEYED, "placement_url": url, "school_ss12000_sources": list(sources), "school_ss12000_poll_seconds": poll}


async def syncs(settings: Settings, outcome: str | None = None) -> list[dict[str, Any]]:
    rows = await school_rows(settings, "SELECT * FROM ss12000_sync ORDER BY started_at")
    return [r for r in rows if outcome is None or r["outcome"] == outcome]


def assert_nothing_identifying_sent(standin: StandIn, personnummer: str) -> None:
    sent = standin.logged_text()
    assert standin.log, "the source was never asked"
    key = pupil_key(MATCH_KEY.encode(), personnummer)
    for needle in (personnummer, personnummer[2:], f"{personnummer[:8]}-{personnummer[8:]}", key, key.upper()):
        assert needle not in sent
    assert MATCH_KEY not in sent
    # Only the standard's list endpoints, with nothing but paging and the change filter.
    assert {(r.method, r.path) for r in standin.log} <= {("GET", "/v2.0/persons"), ("GET", "/v2.0/organisations")}
    for r in standin.log:
        params = httpx.QueryParams(r.query)
        assert set(params.keys()) <= {"limit", "pageToken", "meta.modified.after"}, r.query


async def test_an_enrolment_among_many_changes_records_the_start_within_a_poll_and_resolves_the_alert(
    service_client, live_service, settings, tokens, clock
):
    standin = StandIn()
    org = standin.add_school_unit("12345678", "Skolan i Farsta")
    elsewhere = standin.add_school_unit("87654321", "Annan skola")
    publish_others(standin, elsewhere, 60)
    async with (
        serve(standin),
        placed_children(live_service, tokens, DAY0 - timedelta(days=10)) as (url, [(placement_id, pnr)]),
        service_client("notify", settings_override=NO_PREWARNING) as notify,
    ):
        await consumed(1, notify)
        await evaluate(notify.app)  # (the consumer may have opened it already, evaluating its batch)
        [alert] = await alerts(notify, placement_id=placement_id)
        assert alert["rule"] == "school_gap" and alert["status"] == "open"

        async with service_client("school", settings_override=school_settings(url, source(standin))) as school:
            await eventually(lambda: syncs(settings, "ok"), timeout=20)
            # The school publishes: 150 other pupils' changes over several pages, the child's
            # enrolment (from yesterday) in the middle of them.
            publish_others(standin, elsewhere, 75, offset=1000)
            # Enrolled at the unit's grundskola and fritidshem from the same day, as pupils often are.
            yesterday = DAY0 - timedelta(days=1)
            both = [{**enrolment(org, yesterday), "schoolType": "FTH"}, enrolment(org, yesterday)]
            standin.put_person(str(uuid.uuid4()), pnr, both, givenName="Barn")
            publish_others(standin, elsewhere, 75, offset=2000)
            published = time.monotonic()

            async def recorded() -> list[dict[str, Any]]:
                resp = await school.get("/v1/school-starts", params={"placement_id": placement_id})
                return resp.json()["items"]  # type: ignore[no-any-return]

            [start] = await eventually(recorded, timeout=POLL + 15, interval=0.1)
            took = time.monotonic() - published
            assert start["provenance"] == "ss12000:kommun"
            assert start["school_unit_code"] == "12345678" and start["start_date"] == str(DAY0 - timedelta(days=1))
            assert start["days_to_school_start"] == 9
            # The next poll came within one interval; the sync itself (three services on two
            # cores) is allowed a few seconds more.
            assert took < POLL + 5, took

            async def resolved() -> bool:
                [got] = await alerts(notify, placement_id=placement_id)
                return bool(got["status"] == "resolved" and got["resolution_reason"] == "school_started")

            await eventually(resolved, timeout=20)
            [run] = [r for r in await syncs(settings, "ok") if r["matches"] == 1]
            assert run["entities"] == 151 and run["pages"] >= 4 and run["malformed"] == 0

            metrics = (await school.get("/metrics")).text
            assert 'obruten_ss12000_last_success_timestamp_seconds{source="kommun"}' in metrics
            assert 'obruten_ss12000_lag_seconds{source="kommun"}' in metrics
            audit = await school_rows(settings, "SELECT * FROM audit WHERE resource_type = 'ss12000_sync'")
            assert {str(r["resource_id"]) for r in audit} == {str(r["id"]) for r in await syncs(settings)}
            assert all(r["subject"] == "ss12000:kommun" for r in audit)

    assert standin.violations == []
    assert_nothing_identifying_sent(standin, pnr)
    dump = await school_dump(settings)
    key = pupil_key(MATCH_KEY.encode(), pnr)
    assert pnr not in dump and pnr[2:] not in dump and key not in dump
    # Nobody else's number either: the other pupils were dropped as they were read.
    assert other_pupil(1000) not in dump and "Elevsson" not in dump and "Barn" not in dump


async def starts_of(school: httpx.AsyncClient, placement_id: str) -> list[dict[str, Any]]:
    resp = await school.get("/v1/school-starts", params={"placement_id": placement_id})
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]  # type: ignore[no-any-return]


async def position(settings: Settings) -> Any:
    rows = await school_rows(settings, "SELECT position FROM ss12000_source WHERE name = 'kommun'")
    return rows[0]["position"] if rows else None


async def test_a_source_answering_500_on_some_pages_then_on_all_loses_no_enrolment_change(
    service_client, live_service, settings, tokens, clock
):
    standin = StandIn()
    org = standin.add_school_unit("12345678", "Skolan")
    elsewhere = standin.add_school_unit("87654321", "Annan skola")
    publish_others(standin, elsewhere, 100)
    ten_days_ago = DAY0 - timedelta(days=10)
    async with (
        serve(standin),
        placed_children(live_service, tokens, ten_days_ago, ten_days_ago) as (url, [(a, pnr_a), (b, pnr_b)]),
    ):
        # Page 2 of every change set fails, whatever the retries.
        standin.faults.pages = {2}
        standin.put_person(str(uuid.uuid4()), pnr_a, [enrolment(org, DAY0 - timedelta(days=2))])
        publish_others(standin, elsewhere, 40, offset=500)
        async with service_client(
            "school", settings_override=school_settings(url, source(standin), poll=0.5)
        ) as school:
            await eventually(lambda: _at_least(settings, 2, "failed"), timeout=30)
            assert await position(settings) is None
            assert await starts_of(school, a) == []

            # Then every request fails, while the school goes on publishing.
            standin.faults.everything = True
            failed = len(await syncs(settings, "failed"))
            standin.put_person(str(uuid.uuid4()), pnr_b, [enrolment(org, DAY0 - timedelta(days=1))])
            publish_others(standin, elsewhere, 40, offset=700)
            await eventually(lambda: _at_least(settings, failed + 2, "failed"), timeout=30)
            assert await position(settings) is None
            assert (await school.get("/healthz")).status_code == 200  # the API carries on

            # The source recovers: both enrolments, nothing lost.
            standin.faults = type(standin.faults)()
            [start_a] = await eventually(lambda: starts_of(school, a), timeout=30)
            [start_b] = await eventually(lambda: starts_of(school, b), timeout=30)
            assert (start_a["start_date"], start_a["provenance"]) == (str(DAY0 - timedelta(days=2)), "ss12000:kommun")
            assert (start_b["start_date"], start_b["provenance"]) == (str(DAY0 - timedelta(days=1)), "ss12000:kommun")
            newest = max(p["meta"]["modified"] for p in standin.persons.values())
            assert (await position(settings)).isoformat().replace("+00:00", "") == newest.replace("+00:00", "")

            await _end_and_cancel_through_a_flaky_source(standin, school, settings, org, (a, pnr_a), (b, pnr_b))

    failed_runs = await syncs(settings, "failed")
    assert failed_runs and all(r["position_after"] == r["position_before"] for r in failed_runs)
    assert {r["error"] for r in failed_runs} == {"http-500"}
    assert standin.violations == []
    assert_nothing_identifying_sent(standin, pnr_a)
    assert_nothing_identifying_sent(standin, pnr_b)


async def _at_least(settings: Settings, n: int, outcome: str) -> bool:
    return len(await syncs(settings, outcome)) >= n


def _person_of(standin: StandIn, pnr: str) -> str:
    [pid] = [p["id"] for p in standin.persons.values() if p["civicNo"]["value"] == pnr]
    return pid


async def _end_and_cancel_through_a_flaky_source(
    standin: StandIn, school: httpx.AsyncClient, settings: Settings, org: str, *children: tuple[str, str]
) -> None:
    """A flaky source (every other request 500) is ridden out by the retries: A's enrolment ends
    (endDate is inclusive: the school end is the day after), B's is cancelled."""
    (a, pnr_a), (b, pnr_b) = children
    standin.faults.every_nth = 2
    ended = enrolment(org, DAY0 - timedelta(days=2), end=DAY0 - timedelta(days=1))
    standin.put_person(_person_of(standin, pnr_a), pnr_a, [ended])
    standin.put_person(_person_of(standin, pnr_b), pnr_b, [enrolment(org, DAY0 - timedelta(days=1), cancelled=True)])

    async def both_closed() -> bool:
        got = (await starts_of(school, a)) + (await starts_of(school, b))
        return all(s["end_date"] is not None for s in got)

    await eventually(both_closed, timeout=30)
    [start_a] = await starts_of(school, a)
    [start_b] = await starts_of(school, b)
    assert start_a["end_date"] == str(DAY0)
    assert start_b["end_date"] == start_b["start_date"]  # withdrawn: it never began
    ends = await school_rows(settings, "SELECT placement_id, provenance, reason FROM school_end")
    assert {(str(e["placement_id"]), e["provenance"], e["reason"]) for e in ends} == {
        (a, "ss12000:kommun", "left"),
        (b, "ss12000:kommun", "other"),
    }
