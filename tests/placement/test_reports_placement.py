"""Placement reports on a real PostgreSQL, with data entered through the placement API."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx

from services.placement.reports.tables import FORM_COLUMNS
from shared.contracts.vocabulary import PlacementForm
from shared.kernel.db import CommitHooks
from shared.kernel.settings import STOCKHOLM_DISTRICTS
from shared.web.runtime import runtime
from tests.fixtures.factories import luhn_pnr, placement_body

# The city's table of children placed at some time during 2020 (../shared/domain.md), columns in
# its order: §12-hem (sis), HVB, jourhem, familjehem, skyddat boende, stödboende; None is `*`.
H = None
TABLE_2020: dict[str, list[int | None]] = {
    "Rinkeby-Kista": [25, 57, 115, 94, H, 35],
    "Spånga-Tensta": [17, 31, 75, 56, 0, 25],
    "Hässelby-Vällingby": [8, 42, 87, 75, 4, 8],
    "Bromma": [H, 16, 47, 38, 0, 4],
    "Kungsholmen": [H, 9, 17, 16, 0, 4],
    "Norrmalm": [4, 15, 11, 10, H, 6],
    "Östermalm": [H, H, 13, 11, 0, 5],
    "Södermalm": [8, 18, 57, 36, H, 28],
    "Enskede-Årsta-Vantör": [14, 41, 138, 79, H, 16],
    "Skarpnäck": [H, 12, 49, 48, 0, 9],
    "Farsta": [11, 22, 55, 46, 4, 17],
    "Hägersten-Älvsjö": [10, 34, 56, 58, H, 29],
    "Skärholmen": [H, 10, 97, 55, H, 7],
}
ROW_TOTALS_2020 = {
    "Rinkeby-Kista": 326,
    "Spånga-Tensta": 204,
    "Hässelby-Vällingby": 224,
    "Bromma": 105,
    "Kungsholmen": 46,
    "Norrmalm": 46,
    "Östermalm": 29,
    "Södermalm": 147,
    "Enskede-Årsta-Vantör": 288,
    "Skarpnäck": 118,
    "Farsta": 155,
    "Hägersten-Älvsjö": 187,
    "Skärholmen": 169,
}
CITY_TOTAL_2020 = [97, 307, 817, 622, 8, 193, 2044]

PERIOD_2020 = {"from": "2020-01-01", "to": "2020-12-31"}
CSV = {"Accept": "text/csv"}
# Enough for ~4,300 writes in one test; the default (600/minute) guards production clients.
FAST = {"rate_limit_writes": "100000/minute", "database_pool_size": 16}


@dataclass
class Spec:
    district: str
    form: str
    start: date
    end: date | None = None
    end_reason: str = "care_plan"
    duration: str = "temporary"


def child_pnr(i: int, form: str) -> str:
    """The i-th test child's number. Born 2005-2013: every start date used below falls within
    ages 0-20; a child placed in stödboende is born 2001-2002, 16 or older on every start date
    used (stödboende is for ages 16-20, issue 14)."""
    if form == PlacementForm.stodboende:
        return luhn_pnr(date(2001, 1, 1) + timedelta(days=i % 600), 600 + i // 600)
    birth = date(2005, 1, 1) + timedelta(days=i % 3000)
    if (birth.month, birth.day) == (2, 29):
        # The placement service answers 500 for a child born on 29 February (its age check
        # builds the 21st birthday with date.replace); reported, not this test's subject.
        birth -= timedelta(days=1)
        i += 3000 * 7  # a serial of its own, so that 28 February's child keeps its number
    return luhn_pnr(birth, 100 + i // 3000)


class People:
    """Registers children through the API, each with one placement (optionally ended)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.n = 0

    def _pnr(self, form: str) -> str:
        i, self.n = self.n, self.n + 1
        return child_pnr(i, form)

    async def one(self, spec: Spec) -> str:
        pnr = self._pnr(spec.form)
        child = await self.client.post("/v1/children", json={"personnummer": pnr, "district": spec.district})
        assert child.status_code == 201, child.text
        child_id: str = child.json()["id"]
        await self.place(child_id, spec)
        return child_id

    async def place(self, child_id: str, spec: Spec) -> str:
        resp = await self.client.post(
            "/v1/placements",
            json=placement_body(
                child_id, start=spec.start, district=spec.district, form=spec.form, duration=spec.duration
            ),
        )
        assert resp.status_code == 201, resp.text
        placement_id: str = resp.json()["id"]
        if spec.end is not None:
            ended = await self.client.post(
                f"/v1/placements/{placement_id}/end",
                json={"end_date": spec.end.isoformat(), "end_reason": spec.end_reason},
            )
            assert ended.status_code == 200, ended.text
        return placement_id

    async def many(self, specs: Sequence[Spec], concurrency: int = 24) -> None:
        # Chunks keep the connection pool (and the relay behind it) from being swamped.
        for i in range(0, len(specs), concurrency):
            await asyncio.gather(*(self.one(s) for s in specs[i : i + concurrency]))


def hidden_fill(district: str, col: int) -> int:
    """1 to 3 children behind each `*`, varied so the test does not rely on one value."""
    return 1 + (len(district) + col) % 3


def specs_2020() -> list[Spec]:
    specs: list[Spec] = []
    k = 0
    for district, cells in TABLE_2020.items():
        for col, value in enumerate(cells):
            for _ in range(value if value is not None else hidden_fill(district, col)):
                k += 1
                if k % 10 == 0:
                    # Under way since 2019 and still open: overlaps 2020.
                    spec = Spec(district, FORM_COLUMNS[col], date(2019, 6, 1))
                elif k % 25 == 0:
                    # Ends on the last day of 2020: covers up to 30 December.
                    spec = Spec(district, FORM_COLUMNS[col], date(2020, 3, 1), end=date(2020, 12, 31))
                else:
                    spec = Spec(district, FORM_COLUMNS[col], date(2020, 1, 1) + timedelta(days=k % 366))
                specs.append(spec)
    # Placements that do not overlap 2020, all in a shown cell (Farsta, sis: 11): counting any
    # of them would change it.
    specs += [
        Spec("Farsta", "sis", date(2019, 5, 1), end=date(2020, 1, 1)),  # left on 1 January: ends 2019
        Spec("Farsta", "sis", date(2021, 1, 1)),
        # Starts and ends on the same day: counts on that day (issue 14), which lies in 2021.
        Spec("Farsta", "sis", date(2021, 6, 1), end=date(2021, 6, 1)),
    ]
    return specs


def cells_of(row: dict[str, Any]) -> list[int | str]:
    return [row[c] for c in FORM_COLUMNS]


def rows_by_district(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["district"]: r for r in report["tables"][0]["rows"]}


def csv_rows(resp: httpx.Response) -> list[list[str]]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(resp.content.decode("utf-8"), newline="")))


def as_cell(text: str) -> int | str:
    return text if text == "*" else int(text)


def assert_problem(resp: httpx.Response, status: int, field: str | None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["type"].startswith("https://")
    if field is not None:
        assert body["field"] == field, body
    return body


def assert_no_hidden_value_derivable(rows: list[dict[str, Any]]) -> None:
    """For each row and column: the total minus its shown cells reveals no hidden cell.

    Totals count only shown cells, so with one placement per child that difference must be 0,
    which is no hidden cell's value (1 to 3); with several hidden cells it could only be a sum.
    """
    body = [r for r in rows if r["district"] != "total"]
    total_row = next(r for r in rows if r["district"] == "total")
    for r in [*body, total_row]:
        shown = [v for v in cells_of(r) if v != "*"]
        hidden = [v for v in cells_of(r) if v == "*"]
        remainder = r["total"] - sum(shown)
        assert remainder == 0 or len(hidden) >= 2, (r["district"], remainder)
    for col in FORM_COLUMNS:
        column = [r[col] for r in body]
        shown = [v for v in column if v != "*"]
        remainder = total_row[col] - sum(shown)
        assert remainder == 0 or column.count("*") >= 2, (col, remainder)


# --- the city's 2020 table -------------------------------------------------------------------


async def test_2020_table_entered_through_the_api_is_reproduced_without_revealing_hidden_cells(service_client):
    assert set(FORM_COLUMNS) == {f.value for f in PlacementForm}
    quiet = {**FAST, "outbox_poll_interval_seconds": 3600.0}
    async with service_client("placement", role="admin", settings_override=quiet) as client:
        # The events are not this test's subject: keep the relay from publishing ~4,000 of them
        # while the data goes in (it is woken after each commit), which saves a fifth of the time.
        runtime(client.app).commit_hooks = CommitHooks()  # none registered: nothing is woken
        people = People(client)
        await people.many(specs_2020())

        resp = await client.get("/v1/reports/placements", params=PERIOD_2020)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-obruten-period"] == "2020-01-01/2020-12-31"
        report = resp.json()
        assert report["period"] == PERIOD_2020
        assert report["threshold"] == 4
        assert report["extracted_at"].startswith("2025-09-01T")
        table = report["tables"][0]
        assert table["columns"] == [
            "district",
            "sis",
            "hvb",
            "jourhem",
            "familjehem",
            "skyddat_boende",
            "stodboende",
            "total",
            "children",
        ]
        rows = rows_by_district(report)
        assert [r["district"] for r in table["rows"]] == [*STOCKHOLM_DISTRICTS, "total"]

        # Every shown cell equals the table's, `*` exactly where the table has one.
        for district, expected in TABLE_2020.items():
            assert cells_of(rows[district]) == ["*" if v is None else v for v in expected], district
            assert rows[district]["total"] == ROW_TOTALS_2020[district], district
        assert [*cells_of(rows["total"]), rows["total"]["total"]] == CITY_TOTAL_2020
        assert_no_hidden_value_derivable(table["rows"])

        # The CSV reads back into the same numbers.
        rows_csv = csv_rows(await client.get("/v1/reports/placements", params=PERIOD_2020, headers=CSV))
        assert rows_csv[0] == table["columns"]
        assert rows_csv[1][0] == "Rinkeby-Kista" and rows_csv[7][0] == "Östermalm"
        assert [[r[0], *map(as_cell, r[1:])] for r in rows_csv[1:]] == [
            [r[c] for c in table["columns"]] for r in table["rows"]
        ]

        # One district alone gives that district's row, and a total row equal to it.
        one = await client.get("/v1/reports/placements", params={**PERIOD_2020, "district": "Östermalm"})
        assert one.status_code == 200, one.text
        one_rows = one.json()["tables"][0]["rows"]
        assert one_rows[0] == rows["Östermalm"]
        # Its total row counts shown cells only, like every total: 0 under a `*`.
        shown_only = {k: 0 if v == "*" else v for k, v in rows["Östermalm"].items()}
        assert one_rows[1] == {**shown_only, "district": "total"}

        # What hides behind a `*` is invisible: one more child in a hidden cell (still under 4)
        # leaves the whole answer unchanged.
        bromma_sis = hidden_fill("Bromma", 0)
        assert bromma_sis < 3
        await people.one(Spec("Bromma", "sis", date(2020, 5, 5)))
        again = await client.get("/v1/reports/placements", params=PERIOD_2020)
        assert again.json() == report


# --- placed children: counting rules ----------------------------------------------------------


async def test_a_child_in_two_forms_counts_in_both_cells_and_once_in_the_total(service_client):
    async with service_client("placement", settings_override=FAST) as client:
        people = People(client)
        for _ in range(4):
            child_id = await people.one(Spec("Farsta", "jourhem", date(2020, 2, 1)))
            placement = (await client.get("/v1/placements", params={"child_id": child_id})).json()["items"][0]
            following = placement_body(child_id, start=date(2020, 5, 1), district="Farsta", form="familjehem")
            del following["child_id"]
            moved = await client.post(
                f"/v1/placements/{placement['id']}/move", json={"move_date": "2020-05-01", "next": following}
            )
            assert moved.status_code == 201, moved.text
        # One of them also went through an HVB, a cell of its own under 4: hidden, and the
        # total stays the children of the shown cells.
        hvb_child = await people.one(Spec("Farsta", "hvb", date(2020, 8, 1)))
        assert hvb_child

        rows = rows_by_district((await client.get("/v1/reports/placements", params=PERIOD_2020)).json())
        farsta = rows["Farsta"]
        assert (farsta["jourhem"], farsta["familjehem"], farsta["hvb"]) == (4, 4, "*")
        # The city's total is the plain sum of the shown cells (4 + 4); the distinct children of
        # those cells are `children` (issue 14, finding 8).
        assert farsta["total"] == 8 and farsta["children"] == 4
        assert rows["total"]["jourhem"] == 4 and rows["total"]["hvb"] == 0
        assert rows["total"]["total"] == 8 and rows["total"]["children"] == 4
        assert rows["Bromma"]["total"] == 0

        # The period's edges: a placement counts from its start day up to the day before it ends.
        edge = (await client.get("/v1/reports/placements", params={"from": "2020-05-01", "to": "2020-05-01"})).json()
        edge_farsta = rows_by_district(edge)["Farsta"]
        assert (edge_farsta["jourhem"], edge_farsta["familjehem"]) == (0, 4)
        before = (await client.get("/v1/reports/placements", params={"from": "2020-01-01", "to": "2020-01-31"})).json()
        assert rows_by_district(before)["Farsta"]["total"] == 0


async def test_threshold_is_configurable(service_client):
    async with service_client("placement", settings_override={**FAST, "report_suppress_below": 1}) as client:
        people = People(client)
        await people.many([Spec("Bromma", "sis", date(2020, 3, 1))] * 2)
        report = (await client.get("/v1/reports/placements", params=PERIOD_2020)).json()
        assert report["threshold"] == 1
        assert rows_by_district(report)["Bromma"]["sis"] == 2


# --- endings ----------------------------------------------------------------------------------


async def test_endings_by_reason_hide_small_counts_and_count_shown_cells_in_totals(service_client):
    async with service_client("placement", settings_override=FAST) as client:
        people = People(client)
        ended = [
            *[Spec("Farsta", "familjehem", date(2019, 1, 1), end=date(2020, 3, 1), end_reason="care_plan")] * 5,
            *[Spec("Farsta", "hvb", date(2019, 1, 1), end=date(2020, 4, 1), end_reason="turned_18")] * 2,
            *[Spec("Farsta", "jourhem", date(2019, 1, 1), end=date(2020, 12, 31), end_reason="breakdown")] * 4,
            # Outside 2020: the end date is the day the child left.
            Spec("Farsta", "familjehem", date(2019, 1, 1), end=date(2021, 1, 1), end_reason="care_plan"),
            Spec("Farsta", "familjehem", date(2019, 1, 1), end=date(2019, 12, 31), end_reason="care_plan"),
            # Still under way: not an ending.
            Spec("Farsta", "familjehem", date(2019, 1, 1)),
        ]
        await people.many(ended)
        # Two children with two care-plan endings each in Bromma: four placements, two
        # children: hidden, because the rule counts children.
        for _ in range(2):
            child_id = await people.one(
                Spec("Bromma", "jourhem", date(2020, 1, 1), end=date(2020, 2, 1), end_reason="care_plan")
            )
            await people.place(
                child_id, Spec("Bromma", "jourhem", date(2020, 3, 1), end=date(2020, 4, 1), end_reason="care_plan")
            )

        resp = await client.get("/v1/reports/placement-endings", params=PERIOD_2020)
        assert resp.status_code == 200, resp.text
        report = resp.json()
        table = report["tables"][0]
        assert table["columns"] == [
            "district",
            "care_plan",
            "turned_18",
            "custody_transferred",
            "adoption",
            "breakdown",
            "moved",
            "other",
            "total",
        ]
        rows = rows_by_district(report)
        farsta = rows["Farsta"]
        assert (farsta["care_plan"], farsta["turned_18"], farsta["breakdown"], farsta["adoption"]) == (5, "*", 4, 0)
        assert farsta["total"] == 9  # the hidden turned_18 endings are in no total
        assert rows["Bromma"]["care_plan"] == "*" and rows["Bromma"]["total"] == 0
        assert rows["total"]["care_plan"] == 5 and rows["total"]["turned_18"] == 0
        assert rows["total"]["total"] == 9

        rows_csv = csv_rows(await client.get("/v1/reports/placement-endings", params=PERIOD_2020, headers=CSV))
        assert rows_csv[0] == table["columns"]
        assert [[r[0], *map(as_cell, r[1:])] for r in rows_csv[1:]] == [
            [r[c] for c in table["columns"]] for r in table["rows"]
        ]


# --- long temporary placements --------------------------------------------------------------


async def test_long_temporary_placements_past_the_configured_bound(service_client, clock):
    today = clock.today()  # 2025-09-01
    async with service_client("placement", settings_override=FAST) as client:
        people = People(client)
        await people.many(
            [
                *[Spec("Farsta", "jourhem", today - timedelta(days=200))] * 4,
                # Exactly 183 days: at the bound, not past it. 184: past it.
                Spec("Farsta", "jourhem", today - timedelta(days=183)),
                Spec("Bromma", "jourhem", today - timedelta(days=184)),
                # Long-term placements have no such bound; ended ones are no longer under way.
                Spec("Farsta", "familjehem", today - timedelta(days=400), duration="long_term"),
                Spec("Farsta", "jourhem", today - timedelta(days=300), end=today - timedelta(days=1)),
                Spec("Farsta", "jourhem", today - timedelta(days=100)),
            ]
        )
        resp = await client.get("/v1/reports/long-temporary-placements")
        assert resp.status_code == 200, resp.text
        report = resp.json()
        assert report["on"] == today.isoformat() and report["max_days"] == 183
        assert report["period"] == {"from": today.isoformat(), "to": today.isoformat()}
        assert report["tables"][0]["columns"] == ["district", "long_temporary"]
        rows = rows_by_district(report)
        assert rows["Farsta"]["long_temporary"] == 4
        assert rows["Bromma"]["long_temporary"] == "*"
        assert rows["total"]["long_temporary"] == 4

        # The day before the ended one ended (its last day in care), it still counts: 5 in Farsta.
        earlier = (await client.get("/v1/reports/long-temporary-placements", params={"on": "2025-08-30"})).json()
        assert rows_by_district(earlier)["Farsta"]["long_temporary"] == 5

        rows_csv = csv_rows(await client.get("/v1/reports/long-temporary-placements", headers=CSV))
        assert rows_csv[0] == ["district", "long_temporary"]
        assert dict((r[0], as_cell(r[1])) for r in rows_csv[1:]) == {
            r["district"]: r["long_temporary"] for r in report["tables"][0]["rows"]
        }

    async with service_client("placement", settings_override={"temporary_placement_max_days": 90}) as client:
        rows = rows_by_district((await client.get("/v1/reports/long-temporary-placements")).json())
        assert rows["Farsta"]["long_temporary"] == 6  # the 100-day one and the 183-day one join


# --- bad input, formats, roles ----------------------------------------------------------------


async def test_bad_periods_districts_and_formats_are_4xx_problems(service_client):
    async with service_client("placement", settings_override={"report_max_period_days": 366}) as client:
        url = "/v1/reports/placements"
        body = assert_problem(await client.get(url, params={"from": "2020-12-31", "to": "2020-01-01"}), 422, "query.to")
        assert "before" in body["detail"]
        body = assert_problem(await client.get(url, params={"from": "2020-01-01", "to": "2021-01-01"}), 422, "query.to")
        assert "367 days" in body["detail"]
        ok = await client.get(url, params={"from": "2020-01-01", "to": "2020-12-31"})  # 366 days, a leap year
        assert ok.status_code == 200, ok.text
        assert_problem(await client.get(url, params={"to": "2020-12-31"}), 422, "query.from")
        assert_problem(await client.get(url, params={"from": "2020-13-01", "to": "2020-12-31"}), 422, "query.from")
        assert_problem(await client.get(url, params={"from": "2020-01-01", "to": "soon"}), 422, "query.to")
        body = assert_problem(
            await client.get(url, params={**PERIOD_2020, "district": "Gotham"}), 422, "query.district"
        )
        assert "Rinkeby-Kista" in body["detail"]
        assert_problem(
            await client.get("/v1/reports/placement-endings", params={**PERIOD_2020, "district": "x" * 101}),
            422,
            "query.district",
        )
        assert_problem(
            await client.get("/v1/reports/placement-endings", params={"from": "2021-01-01", "to": "2020-01-01"}),
            422,
            "query.to",
        )
        early = await client.get("/v1/reports/long-temporary-placements", params={"on": "0001-01-01"})
        assert early.status_code == 200, early.text
        assert_problem(
            await client.get("/v1/reports/long-temporary-placements", params={"on": "yesterday"}), 422, "query.on"
        )
        assert_problem(
            await client.get(url, params=PERIOD_2020, headers={"Accept": "application/xml"}), 406, "header.accept"
        )
        # Wildcards and preferences: JSON unless CSV is preferred.
        for accept, kind in [
            ("*/*", "application/json"),
            ("text/*", "text/csv"),
            ("text/csv;q=0.5, application/json", "application/json"),
            ("application/json;q=0.1, text/csv", "text/csv"),
            ("text/csv, */*;q=0.1", "text/csv"),
        ]:
            resp = await client.get(url, params=PERIOD_2020, headers={"Accept": accept})
            assert resp.status_code == 200 and resp.headers["content-type"].startswith(kind), (accept, resp.text)


async def test_csv_states_period_and_extraction_and_keeps_swedish_names(service_client):
    async with service_client("placement") as client:
        resp = await client.get("/v1/reports/placements", params=PERIOD_2020, headers=CSV)
        assert resp.headers["content-type"] == "text/csv; charset=utf-8"
        assert resp.headers["x-obruten-period"] == "2020-01-01/2020-12-31"
        assert resp.headers["x-obruten-extracted-at"].startswith("2025-09-01T")
        assert resp.headers["x-obruten-suppress-below"] == "4"
        assert resp.headers["content-disposition"] == 'attachment; filename="placements_2020-01-01_2020-12-31.csv"'
        assert not resp.content.startswith(b"\xef\xbb\xbf")
        names = [r[0] for r in csv_rows(resp)[1:]]
        assert names == [*STOCKHOLM_DISTRICTS, "total"]
        assert "Hägersten-Älvsjö" in resp.content.decode("utf-8")


async def test_report_roles(service_client, tokens):
    async with service_client("placement", role="central_analyst") as client:
        assert (await client.get("/v1/reports/placements", params=PERIOD_2020)).status_code == 200
        for role in ("caseworker", "district_manager", "admin"):
            resp = await client.get("/v1/reports/placements", params=PERIOD_2020, headers=tokens.headers(role))
            assert resp.status_code == 200, role
        for role in ("school_coordinator", "health_staff", "protected_teaching"):
            resp = await client.get("/v1/reports/placement-endings", params=PERIOD_2020, headers=tokens.headers(role))
            assert_problem(resp, 403, None)
        resp = await client.get("/v1/reports/placements", params=PERIOD_2020, headers={"Authorization": ""})
        assert_problem(resp, 401, None)


async def test_openapi_documents_json_csv_and_suppression(service_client):
    async with service_client("placement") as client:
        spec = (await client.get("/openapi.json")).json()
    for path in ("/v1/reports/placements", "/v1/reports/placement-endings", "/v1/reports/long-temporary-placements"):
        op = spec["paths"][path]["get"]
        assert "Totals count only the shown cells" in op["description"]
        content = op["responses"]["200"]["content"]
        assert "application/json" in content and "text/csv" in content
    schema = spec["components"]["schemas"]["PlacedChildrenReport"]
    assert {"period", "extracted_at", "threshold", "tables"} <= set(schema["properties"])
