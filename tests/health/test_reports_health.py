"""The examination report on a real PostgreSQL. Placements are entered through the placement API
and reach the health service's copy over the bus; examinations through the health API."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
import httpx

from services.health.reports.tables import FIGURES
from shared.kernel.settings import STOCKHOLM_DISTRICTS, Settings
from shared.local.migrate import _asyncpg_dsn
from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.support import eventually

TODAY = date(2025, 9, 1)  # the clock fixture's today
JULY = {"from": "2025-07-01", "to": "2025-07-31"}
AUGUST = {"from": "2025-08-01", "to": "2025-08-31"}
CSV = {"Accept": "text/csv"}
H = "*"


@dataclass
class Case:
    district: str
    start: date
    # (kind, status, date) as recorded through the health API.
    exams: list[tuple[str, str, date]] = field(default_factory=list)
    ended: date | None = None


def d(month: int, day: int) -> date:
    return date(2025, month, day)


CASES: list[Case] = [
    # Farsta, July; deadlines 30 days after the start.
    Case(
        "Farsta", d(7, 1), [("health", "completed", d(7, 10)), ("dental", "completed", d(7, 31))]
    ),  # both, dental on the day
    Case("Farsta", d(7, 2), [("health", "completed", d(7, 20)), ("dental", "completed", d(8, 15))]),  # dental late
    Case("Farsta", d(7, 3), [("dental", "completed", d(7, 5)), ("health", "declined", d(7, 6))]),  # health outstanding
    Case("Farsta", d(7, 4), ended=d(7, 20)),  # left before the deadlines: owed nothing, not in time either
    Case("Farsta", d(7, 5), [("health", "completed", d(7, 6)), ("dental", "completed", d(7, 7))]),  # both
    # Dental only booked (for after today): still outstanding.
    Case("Farsta", d(7, 31), [("health", "completed", d(8, 5)), ("dental", "booked", d(9, 5))]),
    # Began the day before the period: not counted (it would add a `both`).
    Case("Farsta", d(6, 30), [("health", "completed", d(7, 1)), ("dental", "completed", d(7, 1))]),
    # Two children: hidden, and in no total.
    Case("Bromma", d(7, 8), [("health", "completed", d(7, 9)), ("dental", "completed", d(7, 9))]),
    Case("Bromma", d(7, 9)),
    # Norrmalm, August: deadlines still to come for some.
    Case("Norrmalm", d(8, 20)),  # not yet due
    Case("Norrmalm", d(8, 21), [("health", "completed", d(8, 25)), ("dental", "completed", d(8, 26))]),  # both: due
    Case("Norrmalm", d(8, 1)),  # deadline 31 August passed: due, both outstanding
    Case("Norrmalm", d(8, 22), [("health", "completed", d(8, 23))]),  # dental still has time: not yet due
]


async def enter(placement: httpx.AsyncClient, health: httpx.AsyncClient, settings: Settings) -> None:
    ids: list[str] = []
    for i, case in enumerate(CASES):
        child = await placement.post("/v1/children", json=child_body(i, district=case.district))
        assert child.status_code == 201, child.text
        created = await placement.post(
            "/v1/placements", json=placement_body(child.json()["id"], start=case.start, district=case.district)
        )
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
        if case.ended is not None:
            ended = await placement.post(
                f"/v1/placements/{ids[-1]}/end", json={"end_date": case.ended.isoformat(), "end_reason": "care_plan"}
            )
            assert ended.status_code == 200, ended.text

    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("health")))  # type: ignore[arg-type]
    try:

        async def all_seen() -> bool:
            seen = await conn.fetchval("SELECT count(*) FROM placement_view")
            ended = await conn.fetchval("SELECT count(*) FROM placement_view WHERE end_date IS NOT NULL")
            return bool(seen == len(CASES) and ended == sum(c.ended is not None for c in CASES))

        await eventually(all_seen, timeout=30)
    finally:
        await conn.close()

    for placement_id, case in zip(ids, CASES, strict=True):
        for kind, status, day in case.exams:
            resp = await health.post(
                "/v1/examinations",
                json={"placement_id": placement_id, "kind": kind, "status": status, "date": day.isoformat()},
            )
            assert resp.status_code == 201, resp.text


def rows_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["district"]: r for r in report["tables"][0]["rows"]}


def as_value(text: str) -> Any:
    if text in ("*", ""):
        return None if text == "" else text
    return float(text) if "." in text else int(text)


def assert_problem(resp: httpx.Response, status: int, field: str | None) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    if field is not None:
        assert resp.json()["field"] == field, resp.json()


async def test_examination_report(service_client, settings, tokens):
    async with service_client("placement") as placement, service_client("health") as health:
        await enter(placement, health, settings)

        resp = await health.get("/v1/reports/examinations", params=JULY)
        assert resp.status_code == 200, resp.text
        report = resp.json()
        assert report["period"] == JULY and report["as_of"] == TODAY.isoformat()
        assert (report["health_exam_days"], report["dental_exam_days"], report["threshold"]) == (30, 30, 4)
        table = report["tables"][0]
        assert table["columns"] == ["district", *FIGURES]
        assert [r["district"] for r in table["rows"]] == [*STOCKHOLM_DISTRICTS, "total"]
        rows = rows_of(report)
        farsta = {
            "district": "Farsta",
            "placements": 6,
            "due": 6,
            "health_in_time": 4,
            "dental_in_time": 3,
            "both_in_time": 2,
            "pct_both_in_time": 33.3,
            "health_outstanding": 1,
            "dental_outstanding": 1,
        }
        assert rows["Farsta"] == farsta
        assert set(rows["Bromma"].values()) == {"Bromma", H}
        assert rows["Norrmalm"]["placements"] == 0 and rows["Norrmalm"]["pct_both_in_time"] is None
        assert rows["total"] == {**farsta, "district": "total"}  # Bromma's children are in no total

        # The CSV reads back into the same numbers.
        resp = await health.get("/v1/reports/examinations", params=JULY, headers=CSV)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
        assert resp.headers["x-obruten-period"] == "2025-07-01/2025-07-31"
        back = list(csv.reader(io.StringIO(resp.content.decode("utf-8"), newline="")))
        assert back[0] == table["columns"]
        assert [[r[0], *map(as_value, r[1:])] for r in back[1:]] == [
            [row[c] for c in table["columns"]] for row in table["rows"]
        ]

        # August: deadlines still to come keep two placements out of `due` and of the share.
        norrmalm = rows_of((await health.get("/v1/reports/examinations", params=AUGUST)).json())["Norrmalm"]
        assert norrmalm == {
            "district": "Norrmalm",
            "placements": 4,
            "due": 2,
            "health_in_time": 2,
            "dental_in_time": 1,
            "both_in_time": 1,
            "pct_both_in_time": 50.0,
            "health_outstanding": 1,
            "dental_outstanding": 1,
        }
        one = rows_of((await health.get("/v1/reports/examinations", params={**AUGUST, "district": "Norrmalm"})).json())
        assert list(one) == ["Norrmalm", "total"] and one["total"] == {**norrmalm, "district": "total"}

        analyst = await health.get("/v1/reports/examinations", params=JULY, headers=tokens.headers("central_analyst"))
        assert analyst.status_code == 200
        assert_problem(
            await health.get("/v1/reports/examinations", params=JULY, headers=tokens.headers("health_staff")), 403, None
        )

    # The deadlines are configurable: 10 days make the 20 July health examination late.
    async with service_client("health", settings_override={"health_report_health_exam_days": 10}) as health:
        report = (await health.get("/v1/reports/examinations", params=JULY)).json()
        assert report["health_exam_days"] == 10
        assert rows_of(report)["Farsta"]["health_in_time"] == 3


async def test_bad_input_is_a_422_problem(service_client):
    async with service_client("health", settings_override={"report_max_period_days": 31}) as health:
        url = "/v1/reports/examinations"
        assert_problem(await health.get(url, params={"from": "2025-07-31", "to": "2025-07-01"}), 422, "query.to")
        assert_problem(await health.get(url, params={"from": "2025-07-01", "to": "2025-08-01"}), 422, "query.to")
        assert_problem(await health.get(url, params={**JULY, "district": "Gotham"}), 422, "query.district")
        assert_problem(await health.get(url, params=JULY, headers={"Accept": "application/xml"}), 406, "header.accept")
        spec = (await health.get("/openapi.json")).json()
    content = spec["paths"][url]["get"]["responses"]["200"]["content"]
    assert "application/json" in content and "text/csv" in content
    assert "ExaminationsReport" in spec["components"]["schemas"]
