"""School reports on a real PostgreSQL. Placements are entered through the placement API and
reach the school service's copy over the bus; school starts and ends through the school API."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx

from services.school.reports.tables import FIGURES, FORMS, OTHER_FORMS
from shared.kernel.settings import STOCKHOLM_DISTRICTS, Settings
from shared.local.migrate import _asyncpg_dsn
from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.support import eventually

TODAY = date(2025, 9, 1)  # the clock fixture's today
JULY = {"from": "2025-07-01", "to": "2025-07-31"}
CSV = {"Accept": "text/csv"}
H = "*"


@dataclass
class Case:
    district: str
    form: str
    start: date
    days: int | None = None  # to the first school start; None: none recorded
    school_change: bool = True
    ended: date | None = None


def july(day: int) -> date:
    return date(2025, 7, day)


CASES: list[Case] = [
    # Farsta, the month: school starts after 3, 7, 8 and 12 days, and one still waiting.
    Case("Farsta", "jourhem", july(1), 3),
    Case("Farsta", "jourhem", july(2), 7),
    Case("Farsta", "familjehem", july(3), 8),
    Case("Farsta", "hvb", july(10), 12),
    Case("Farsta", "hvb", july(20)),
    # Not in the report: no change of school; began the day before; began the day after.
    Case("Farsta", "jourhem", july(5), 1, school_change=False),
    Case("Farsta", "jourhem", july(1) - timedelta(days=1), 40),
    Case("Farsta", "jourhem", date(2025, 8, 1), 2),
    # Two children: the whole row hidden, and in no total.
    Case("Bromma", "jourhem", july(4), 20),
    Case("Bromma", "jourhem", july(6), ended=july(15)),
    # Four children, two started, two waiting: the row is shown, its day statistics and wait not.
    Case("Skärholmen", "familjehem", july(1), 1),
    Case("Skärholmen", "familjehem", july(2), 30),
    Case("Skärholmen", "familjehem", july(3)),
    Case("Skärholmen", "familjehem", july(4)),
    # Four children, all started within 1-4 days, all stödboende: a form with a row of its own.
    *[Case("Spånga-Tensta", "stodboende", july(10 + d), d) for d in (1, 2, 3, 4)],
]


async def enter(placement: httpx.AsyncClient, school: httpx.AsyncClient, settings: Settings) -> dict[int, str]:
    """Every case through the APIs; returns the placement ids by case index."""
    ids: dict[int, str] = {}
    for i, case in enumerate(CASES):
        # Stödboende is for ages 16-20 (issue 14): those children are born in 2008.
        birth = date(2008, 1, 1 + i % 28) if case.form == "stodboende" else None
        child = await placement.post("/v1/children", json=child_body(i, district=case.district, birth=birth))
        assert child.status_code == 201, child.text
        body = placement_body(
            child.json()["id"],
            start=case.start,
            district=case.district,
            form=case.form,
            school_change=case.school_change,
        )
        created = await placement.post("/v1/placements", json=body)
        assert created.status_code == 201, created.text
        ids[i] = created.json()["id"]
        if case.ended is not None:
            ended = await placement.post(
                f"/v1/placements/{ids[i]}/end", json={"end_date": case.ended.isoformat(), "end_reason": "care_plan"}
            )
            assert ended.status_code == 200, ended.text

    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("school")))  # type: ignore[arg-type]
    try:

        async def all_seen() -> bool:
            # Ended placements arrive as a second version: wait for those too.
            seen = await conn.fetchval("SELECT count(*) FROM placement_view")
            ended = await conn.fetchval("SELECT count(*) FROM placement_view WHERE end_date IS NOT NULL")
            return bool(seen == len(CASES) and ended == sum(c.ended is not None for c in CASES))

        await eventually(all_seen, timeout=30)
    finally:
        await conn.close()

    for i, case in enumerate(CASES):
        if case.days is None:
            continue
        resp = await school.post(
            "/v1/school-starts",
            json={
                "placement_id": ids[i],
                "start_date": (case.start + timedelta(days=case.days)).isoformat(),
                "provision": "home_school",
            },
        )
        assert resp.status_code == 201, resp.text
    return ids


def table_rows(report: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in report["tables"][0]["rows"]}


def csv_rows(resp: httpx.Response) -> list[list[str]]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(resp.content.decode("utf-8"), newline="")))


def as_value(text: str) -> Any:
    if text in ("*", ""):
        return None if text == "" else text
    return float(text) if "." in text else int(text)


def assert_csv_matches(resp: httpx.Response, table: dict[str, Any]) -> None:
    rows = csv_rows(resp)
    assert rows[0] == table["columns"]
    label = table["columns"][0]
    assert [[r[0], *map(as_value, r[1:])] for r in rows[1:]] == [
        [row[label], *(row[c] for c in table["columns"][1:])] for row in table["rows"]
    ]


def assert_problem(resp: httpx.Response, status: int, field: str | None) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    if field is not None:
        assert resp.json()["field"] == field, resp.json()


async def test_school_start_reports(service_client, settings, tokens):
    async with service_client("placement") as placement, service_client("school") as school:
        ids = await enter(placement, school, settings)
        # A later change of school within the placement: the first start still counts (3 days).
        first = ids[0]
        ended = await school.post(
            "/v1/school-ends", json={"placement_id": first, "end_date": "2025-07-20", "reason": "moved"}
        )
        assert ended.status_code == 201, ended.text
        again = await school.post(
            "/v1/school-starts", json={"placement_id": first, "start_date": "2025-07-25", "provision": "home_school"}
        )
        assert again.status_code == 201, again.text

        # --- by district ---------------------------------------------------------------------
        resp = await school.get("/v1/reports/school-starts", params=JULY)
        assert resp.status_code == 200, resp.text
        report = resp.json()
        assert report["period"] == JULY and report["as_of"] == TODAY.isoformat()
        assert report["threshold"] == 4 and resp.headers["x-obruten-period"] == "2025-07-01/2025-07-31"
        table = report["tables"][0]
        assert table["columns"] == ["district", *FIGURES]
        assert [r["district"] for r in table["rows"]] == [*STOCKHOLM_DISTRICTS, "total"]
        rows = table_rows(report, "district")

        # The month: 4 started, 2 within 7 days (50 %), median 7.5, max 12, 1 waiting.
        farsta = rows["Farsta"]
        assert farsta == {
            "district": "Farsta",
            "began": 5,
            "started": 4,
            "waiting": 1,
            "ended_without_start": 0,
            "timed": 4,
            "within_7_days": 2,
            "pct_within_7_days": 50.0,
            "median_days": 7.5,
            "p90_days": 12,
            "max_days": 12,
            "longest_wait_days": H,  # one child waiting: a statistic of one is hidden
        }
        # Two children: everything hidden, zero is zero.
        assert set(rows["Bromma"].values()) == {"Bromma", H}
        assert rows["Kungsholmen"]["began"] == 0 and rows["Kungsholmen"]["median_days"] is None
        # Four children, two started: counts shown, their day statistics and wait hidden.
        sk = rows["Skärholmen"]
        assert (sk["began"], sk["started"], sk["waiting"]) == (4, 2, 2)
        assert {sk[k] for k in ("timed", "within_7_days", "median_days", "p90_days", "max_days")} == {H}
        assert sk["longest_wait_days"] == H
        st = rows["Spånga-Tensta"]
        assert (st["began"], st["within_7_days"], st["median_days"], st["max_days"]) == (4, 4, 2.5, 4)

        # The total covers shown districts only, and each statistic only where it is shown:
        # Bromma's two children are nowhere; Skärholmen's 30 days are not the maximum.
        total = rows["total"]
        assert (total["began"], total["started"], total["waiting"], total["ended_without_start"]) == (13, 10, 3, 0)
        assert (total["timed"], total["within_7_days"], total["pct_within_7_days"]) == (8, 6, 75.0)
        assert (total["median_days"], total["p90_days"], total["max_days"]) == (3.5, 12, 12)
        assert total["longest_wait_days"] is None

        assert_csv_matches(await school.get("/v1/reports/school-starts", params=JULY, headers=CSV), table)

        # One district: its row and a total equal to it.
        one = (await school.get("/v1/reports/school-starts", params={**JULY, "district": "Farsta"})).json()
        one_rows = one["tables"][0]["rows"]
        assert one_rows[0] == farsta
        assert one_rows[1] == {**farsta, "district": "total", "longest_wait_days": None}

        # --- by form: the same children as the total ------------------------------------------
        resp = await school.get("/v1/reports/school-starts/by-form", params=JULY)
        assert resp.status_code == 200, resp.text
        by_form = resp.json()["tables"][0]
        assert [r["form"] for r in by_form["rows"]] == [*FORMS, OTHER_FORMS, "total"]
        forms = {r["form"]: r for r in by_form["rows"]}
        assert {k: v for k, v in forms["total"].items() if k != "form"} == {
            k: v for k, v in total.items() if k != "district"
        }
        assert (forms["stodboende"]["began"], forms["stodboende"]["median_days"]) == (4, 2.5)
        assert forms["sis"]["began"] == 0
        # Jourhem and hvb are under four children: hidden, and counted with familjehem (whose
        # timed children are one) in other_forms, which is over the threshold.
        for form in ("jourhem", "hvb", "familjehem"):
            assert set(forms[form].values()) == {form, H}
        other = forms[OTHER_FORMS]
        assert (other["began"], other["started"], other["timed"], other["median_days"]) == (9, 6, 4, 7.5)
        assert_csv_matches(await school.get("/v1/reports/school-starts/by-form", params=JULY, headers=CSV), by_form)

        # --- the district's own list: the waiting child with its days so far ------------------
        resp = await school.get("/v1/reports/school-starts/rows", params={**JULY, "district": "Farsta"})
        assert resp.status_code == 200, resp.text
        listed = resp.json()["tables"][0]
        # `planned` and `planned_start_date` (issue 14, planned starts) follow the six columns of before.
        assert listed["columns"] == [
            "district",
            "form",
            "placement_date",
            "school_start_date",
            "days",
            "status",
            "planned",
            "planned_start_date",
        ]
        assert not any(r["planned"] or r["planned_start_date"] for r in listed["rows"])
        assert [(r["placement_date"], r["school_start_date"], r["days"], r["status"]) for r in listed["rows"]] == [
            ("2025-07-01", "2025-07-04", 3, "started"),
            ("2025-07-02", "2025-07-09", 7, "started"),
            ("2025-07-03", "2025-07-11", 8, "started"),
            ("2025-07-10", "2025-07-22", 12, "started"),
            ("2025-07-20", None, (TODAY - july(20)).days, "waiting"),
        ]
        assert (TODAY - july(20)).days == 43
        bromma = (await school.get("/v1/reports/school-starts/rows", params={**JULY, "district": "Bromma"})).json()
        assert [(r["days"], r["status"]) for r in bromma["tables"][0]["rows"]] == [
            (20, "started"),
            (9, "ended_without_start"),  # 6 to 15 July without school
        ]
        rows_csv = csv_rows(
            await school.get("/v1/reports/school-starts/rows", params={**JULY, "district": "Farsta"}, headers=CSV)
        )
        assert rows_csv[0] == listed["columns"]
        assert rows_csv[5] == ["Farsta", "hvb", "2025-07-20", "", "43", "waiting", "False", ""]
        assert [[r[0], r[1], r[2], r[3] or None, int(r[4]), r[5]] for r in rows_csv[1:]] == [
            [r[c] for c in listed["columns"][:6]] for r in listed["rows"]
        ]

        # --- roles: the list is row-level: the caller's own district, and not for central_analyst -
        analyst = tokens.headers("central_analyst")
        assert (await school.get("/v1/reports/school-starts", params=JULY, headers=analyst)).status_code == 200
        assert (await school.get("/v1/reports/school-starts/by-form", params=JULY, headers=analyst)).status_code == 200
        denied = await school.get(
            "/v1/reports/school-starts/rows", params={**JULY, "district": "Farsta"}, headers=analyst
        )
        assert_problem(denied, 403, None)
        for role in ("district_manager", "caseworker"):
            own = tokens.headers(role, district="Farsta")
            ok = await school.get("/v1/reports/school-starts/rows", params={**JULY, "district": "Farsta"}, headers=own)
            assert ok.status_code == 200, role
            other = await school.get(
                "/v1/reports/school-starts/rows", params={**JULY, "district": "Bromma"}, headers=own
            )
            assert_problem(other, 403, "query.district")
        for role in ("school_coordinator", "health_staff"):
            resp = await school.get("/v1/reports/school-starts", params=JULY, headers=tokens.headers(role))
            assert_problem(resp, 403, None)


async def test_bad_input_is_a_422_problem(service_client):
    async with service_client("school", settings_override={"report_max_period_days": 31}) as school:
        url = "/v1/reports/school-starts"
        assert_problem(await school.get(url, params={"from": "2025-07-31", "to": "2025-07-01"}), 422, "query.to")
        assert_problem(await school.get(url, params={"from": "2025-07-01", "to": "2025-08-01"}), 422, "query.to")
        assert_problem(await school.get(url, params={**JULY, "district": "Gotham"}), 422, "query.district")
        rows = "/v1/reports/school-starts/rows"
        assert_problem(await school.get(rows, params=JULY), 422, "query.district")
        assert_problem(await school.get(rows, params={**JULY, "district": "Gotham"}), 422, "query.district")
        assert_problem(
            await school.get("/v1/reports/school-starts/by-form", params={"from": "2025-07-31", "to": "2025-07-01"}),
            422,
            "query.to",
        )
        empty = await school.get(url, params=JULY)
        assert empty.status_code == 200
        assert table_rows(empty.json(), "district")["total"]["began"] == 0


async def test_openapi_documents_the_school_reports(service_client):
    async with service_client("school") as school:
        spec = (await school.get("/openapi.json")).json()
    for path in ("/v1/reports/school-starts", "/v1/reports/school-starts/by-form", "/v1/reports/school-starts/rows"):
        content = spec["paths"][path]["get"]["responses"]["200"]["content"]
        assert "application/json" in content and "text/csv" in content
    assert "Totals count only the shown cells" in spec["paths"]["/v1/reports/school-starts"]["get"]["description"]
    assert {"as_of", "period", "threshold", "tables"} <= set(
        spec["components"]["schemas"]["SchoolStartsReport"]["properties"]
    )
