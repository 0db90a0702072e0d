"""Secrecy between districts and the database server's log (issue 12, findings 1, 3 and 6).

A district registering a child another district holds gets the answer a child nobody holds
gets, from the same statements; identity numbers reach uniqueness only as ASCII digits; and no
personnummer reaches PostgreSQL's own log, even when registrations of one number race."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

from shared.web.runtime import runtime
from tests.fixtures.factories import child_body, luhn_pnr, placement_body

FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def shape(resp: httpx.Response) -> tuple[int, list[str]]:
    """What a caller can compare between two answers besides the values themselves."""
    return resp.status_code, sorted(resp.json())


@contextlib.contextmanager
def statements(client: Any) -> Iterator[list[str]]:
    """The SQL the service sends while the block runs (texts only, parameters left out)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = runtime(client.app).engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_registering_a_child_another_district_holds_answers_as_for_a_child_nobody_holds(
    service_client: Any, tokens: Any
) -> None:
    bromma = tokens.headers("caseworker", district="Bromma", subject="cw-bromma")
    farsta = tokens.headers("caseworker", district="Farsta", subject="cw-farsta")
    held, fresh = child_body(1, district="Bromma"), child_body(2, district="Farsta")
    async with service_client("placement") as client:
        in_bromma = await client.post("/v1/children", json=held, headers=bromma)
        assert in_bromma.status_code == 201, in_bromma.text

        unknown_lookup = await client.post(
            "/v1/children/lookup", json={"personnummer": fresh["personnummer"]}, headers=farsta
        )
        held_lookup = await client.post(
            "/v1/children/lookup", json={"personnummer": held["personnummer"]}, headers=farsta
        )
        assert held_lookup.status_code == unknown_lookup.status_code == 404
        # request_id names the request (X-Request-ID), not the record: it differs between any two.
        assert _without_request_id(held_lookup.json()) == _without_request_id(unknown_lookup.json())

        with statements(client) as for_fresh:
            nobody = await client.post("/v1/children", json=fresh, headers=farsta)
        with statements(client) as for_held:
            other = await client.post("/v1/children", json={**held, "district": "Farsta"}, headers=farsta)
        assert shape(other) == shape(nobody) == (201, sorted(nobody.json()))
        assert for_held == for_fresh, "the same statements, whether or not another district holds the number"
        assert other.json()["id"] != in_bromma.json()["id"], "Farsta's own record, not Bromma's id"
        assert "existing_id" not in other.text and in_bromma.json()["id"] not in other.text

        # Each district finds its own record; its own duplicate is a conflict about its own row.
        found = await client.post("/v1/children/lookup", json={"personnummer": held["personnummer"]}, headers=farsta)
        assert found.status_code == 200 and found.json()["id"] == other.json()["id"]
        again = await client.post("/v1/children", json={**held, "district": "Farsta"}, headers=farsta)
        assert again.status_code == 409 and again.json()["existing_id"] == other.json()["id"]
        assert in_bromma.json()["id"] not in again.text
        mine = await client.post("/v1/children/lookup", json={"personnummer": held["personnummer"]}, headers=bromma)
        assert mine.json()["id"] == in_bromma.json()["id"]
        # A scoped caller cannot name another district's records at all.
        other_lookup = {"personnummer": held["personnummer"], "district": "Bromma"}
        assert (await client.post("/v1/children/lookup", json=other_lookup, headers=farsta)).status_code == 403
        # An administrator sees both and must say which.
        ambiguous = await client.post("/v1/children/lookup", json={"personnummer": held["personnummer"]})
        assert ambiguous.status_code == 422 and ambiguous.json()["field"] == "body.district"


async def test_the_central_figures_count_a_child_two_districts_placed_once(service_client: Any, clock: Any) -> None:
    body = child_body(3)
    start = clock.today() - timedelta(days=10)
    async with service_client("placement", settings_override={"report_suppress_below": 1}) as client:
        for district in ("Farsta", "Bromma"):
            child = await client.post("/v1/children", json={**body, "district": district})
            assert child.status_code == 201, child.text
            placed = await client.post(
                "/v1/placements", json=placement_body(child.json()["id"], start=start, district=district)
            )
            assert placed.status_code == 201, placed.text
        report = await client.get("/v1/reports/placements", params={"from": str(start), "to": str(clock.today())})
    rows = {r["district"]: r for r in report.json()["tables"][0]["rows"]}
    assert rows["Farsta"]["familjehem"] == rows["Bromma"]["familjehem"] == 1
    assert rows["total"]["familjehem"] == 1, "one person, known to two districts"


async def test_identity_numbers_reach_uniqueness_only_as_ascii_digits(service_client: Any) -> None:
    body = child_body(4)
    async with service_client("placement") as client:
        first = await client.post("/v1/children", json=body)
        assert first.status_code == 201, first.text
        wide_number = body["personnummer"].replace("-", "").translate(FULLWIDTH)
        wide = await client.post("/v1/children", json={**body, "personnummer": wide_number})
        assert wide.status_code == 409 and wide.json()["existing_id"] == first.json()["id"], wide.text
        found = await client.post("/v1/children/lookup", json={"personnummer": wide_number})
        assert found.status_code == 200 and found.json()["id"] == first.json()["id"]
        other_script = body["personnummer"].replace("-", "").translate(ARABIC_INDIC)
        arabic = await client.post("/v1/children", json={**body, "personnummer": other_script})
        assert arabic.status_code == 422 and arabic.json()["field"] == "body.personnummer", arabic.text
        listed = await client.get("/v1/placements")
        assert listed.status_code == 200
        stored = await client.get(f"/v1/children/{first.json()['id']}")
        assert stored.json()["personnummer"].isascii()


async def test_racing_registrations_of_one_number_leave_it_out_of_the_database_servers_log(
    service_client: Any, pg_log: Path
) -> None:
    numbers = [luhn_pnr(date(2012, 5, 1 + n), 400 + n) for n in range(4)]
    answers: list[list[httpx.Response]] = []
    async with service_client("placement", settings_override={"rate_limit_writes": "10000/minute"}) as client:
        for number in numbers:
            bodies = [{"personnummer": number, "district": d} for d in ("Farsta", "Bromma") for _ in range(6)]
            answers.append(await asyncio.gather(*(client.post("/v1/children", json=b) for b in bodies)))
    log = pg_log.read_text(errors="replace")
    assert "database system is ready" in log, "the file read is the server's log"
    for number in numbers:
        digits = number.replace("-", "")
        for spelling in (number, digits, digits[2:]):
            assert spelling not in log, f"a personnummer ({spelling}) in the PostgreSQL server's log"
    assert "DETAIL:" not in log and "STATEMENT:" not in log
    for one_number in answers:
        codes = sorted(a.status_code for a in one_number)
        assert codes == [201, 201] + [409] * 10, "one record per district, the rest conflicts about it"


def _without_request_id(problem: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in problem.items() if k != "request_id"}
