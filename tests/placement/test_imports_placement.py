"""Issue 14 on the placement service: bulk import (finding 3), stödboende's age (6), outside the
municipality (7), the city's table to the last column (8). Scenarios with dates; the test clock
stands at 2025-09-01 (tests/conftest.py)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx

from shared.kernel.db import CommitHooks
from shared.kernel.settings import STOCKHOLM_DISTRICTS, Settings
from shared.local.migrate import _asyncpg_dsn
from shared.web.runtime import runtime
from tests.fixtures.factories import child_body, luhn_pnr, placement_body
from tests.placement.test_reports_placement import (
    CITY_TOTAL_2020,
    FAST,
    PERIOD_2020,
    ROW_TOTALS_2020,
    TABLE_2020,
    Spec,
    assert_no_hidden_value_derivable,
    assert_problem,
    cells_of,
    child_pnr,
    rows_by_district,
    specs_2020,
)

NDJSON = {"Content-Type": "application/x-ndjson"}


def line(external_id: str, pnr: str, *, start: date, district: str = "Farsta", **extra: Any) -> dict[str, Any]:
    body = placement_body("", start=start, district=district, **extra)
    del body["child_id"]
    return {"external_id": external_id, "personnummer": pnr, "protected_identity": False, **body}


def ndjson(lines: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)


async def send(client: httpx.AsyncClient, lines: list[dict[str, Any]] | str) -> dict[str, Any]:
    body = lines if isinstance(lines, str) else ndjson(lines)
    resp = await client.post("/v1/imports", content=body.encode("utf-8"), headers=NDJSON)
    assert resp.status_code == 200, resp.text
    report: dict[str, Any] = resp.json()
    return report


async def fetch(settings: Settings, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("placement")))  # type: ignore[arg-type]
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def import_lines_2020() -> list[dict[str, Any]]:
    out = []
    for i, spec in enumerate(specs_2020()):
        pnr = child_pnr(i, spec.form)  # the numbers People would have given
        extra: dict[str, Any] = {"form": spec.form, "duration": spec.duration}
        if spec.end is not None:
            extra |= {"end_date": spec.end.isoformat(), "end_reason": spec.end_reason}
        out.append(line(f"case-{i}", pnr, start=spec.start, district=spec.district, **extra))
    return out


# --- finding 3 (and 8): the 2020 table entered through POST /v1/imports -------------------------


async def test_2020_table_entered_through_imports_comes_back_as_the_citys(service_client):
    quiet = {**FAST, "outbox_poll_interval_seconds": 3600.0}
    async with service_client("placement", role="admin", settings_override=quiet) as client:
        runtime(client.app).commit_hooks = CommitHooks()  # the events are not this test's subject
        lines = import_lines_2020()
        report = await send(client, lines)
        assert (report["created"], report["unchanged"], report["refused"]) == (len(lines), 0, 0), [
            r for r in report["lines"] if r["status"] == "refused"
        ][:3]
        assert [r["line"] for r in report["lines"]] == list(range(1, len(lines) + 1))

        resp = await client.get("/v1/reports/placements", params=PERIOD_2020)
        assert resp.status_code == 200, resp.text
        table = resp.json()["tables"][0]
        rows = rows_by_district(resp.json())
        assert [r["district"] for r in table["rows"]] == [*STOCKHOLM_DISTRICTS, "total"]
        for district, expected in TABLE_2020.items():
            assert cells_of(rows[district]) == ["*" if v is None else v for v in expected], district
            assert rows[district]["total"] == ROW_TOTALS_2020[district], district
        assert [*cells_of(rows["total"]), rows["total"]["total"]] == CITY_TOTAL_2020
        assert_no_hidden_value_derivable(table["rows"])

        # The same file again changes nothing: every line unchanged, with the same ids.
        again = await send(client, lines)
        assert (again["created"], again["unchanged"], again["refused"]) == (0, len(lines), 0)
        assert [r["id"] for r in again["lines"]] == [r["id"] for r in report["lines"]]
        assert (await client.get("/v1/reports/placements", params=PERIOD_2020)).json()["tables"] == resp.json()[
            "tables"
        ]


# --- finding 3: the import's rules ---------------------------------------------------------------


async def test_each_line_is_all_or_nothing_and_a_refused_line_never_stops_the_others(service_client, settings):
    pnr_ok, pnr_bad, pnr_two = (luhn_pnr(date(2012, 3, 1), s) for s in (201, 202, 203))
    lines: list[dict[str, Any] | str] = [
        line("A-1", pnr_ok, start=date(2025, 3, 1)),
        # Ends before it starts: refused, and its child is not registered either.
        line("A-2", pnr_bad, start=date(2025, 3, 1), end_date="2025-02-01", end_reason="care_plan"),
        "{not json",
        line("A-3", pnr_two, start=date(2024, 1, 10), end_date="2024-06-01", end_reason="moved"),
        # The same child again, after its first placement ended: found by its number.
        line("A-4", pnr_two, start=date(2024, 6, 1), form="hvb"),
        # Overlaps A-4: refused.
        line("A-5", pnr_two, start=date(2025, 1, 1)),
        {**line("A-6", pnr_ok, start=date(2025, 5, 1)), "district": "Atlantis"},
        {k: v for k, v in line("A-7", pnr_ok, start=date(2025, 5, 1)).items() if k != "external_id"},
    ]
    body = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines) + "\n"
    async with service_client("placement") as client:
        report = await send(client, body)
        by_line = {r["line"]: r for r in report["lines"]}
        assert [by_line[n]["status"] for n in range(1, 9)] == [
            "created",
            "refused",
            "refused",
            "created",
            "created",
            "refused",
            "refused",
            "refused",
        ]
        assert (by_line[2]["field"], by_line[6]["field"], by_line[7]["field"]) == ("end_date", "start_date", "district")
        assert by_line[8]["field"] == "external_id" and by_line[3]["field"] is None
        assert all(pnr_bad not in json.dumps(r) for r in report["lines"])
        assert (await client.post("/v1/children/lookup", json={"personnummer": pnr_bad})).status_code == 404
        two = (await client.post("/v1/children/lookup", json={"personnummer": pnr_two})).json()
        placements = (await client.get("/v1/placements", params={"child_id": two["id"]})).json()["items"]
        assert sorted(p["external_id"] for p in placements) == ["A-3", "A-4"]

        # Re-sent: what was created is unchanged; a changed value for a known external_id is refused.
        again = await send(client, [lines[0], {**lines[3], "form": "sis"}])  # type: ignore[list-item]
        assert (again["lines"][0]["status"], again["lines"][0]["id"]) == ("unchanged", by_line[1]["id"])
        assert (again["lines"][1]["status"], again["lines"][1]["field"]) == ("refused", "external_id")

    rows = await fetch(settings, "SELECT type, payload FROM outbox ORDER BY seq")
    assert len(rows) == 4  # started A-1, started + ended A-3, started A-4: none for refused lines
    for row in rows:
        data = json.loads(row["payload"])["data"] if isinstance(row["payload"], str) else row["payload"]["data"]
        assert data["imported"] is True


async def test_import_wants_ndjson_and_has_its_own_rate_limit(service_client):
    limits = {"rate_limit_imports": "2/minute", "rate_limit_writes": "3/minute"}
    async with service_client("placement", settings_override=limits) as client:
        wrong = await client.post("/v1/imports", json={"external_id": "x"})
        assert_problem(wrong, 415, "header.content-type")
        await send(client, [line("R-1", luhn_pnr(date(2012, 3, 1), 301), start=date(2025, 3, 1))])
        limited = await client.post("/v1/imports", content=b"\n", headers=NDJSON)
        assert_problem(limited, 429, None)
        assert "Imports are limited to 2/minute" in limited.json()["detail"]
        # Ordinary writes keep their own budget.
        assert (await client.post("/v1/children", json=child_body(5))).status_code == 201


async def test_an_import_may_be_larger_than_an_ordinary_request(service_client):
    lines = [
        line(f"B-{i}", luhn_pnr(date(2011, 1, 1) + timedelta(days=i), 400), start=date(2025, 1, 2)) for i in range(60)
    ]
    async with service_client("placement", settings_override={"max_request_bytes": 2048}) as client:
        report = await send(client, lines)
        assert report["created"] == 60
        too_big = await client.post("/v1/children", content=b" " * 4096, headers={"Content-Type": "application/json"})
        assert_problem(too_big, 413, None)


# --- finding 6: stödboende is for ages 16-20 ----------------------------------------------------


async def test_stodboende_for_a_child_under_16_is_refused_naming_the_field(service_client):
    async with service_client("placement") as client:
        # Born 2010-03-01: 15 on 2025-02-28, 16 from 2026-03-01.
        child = (await client.post("/v1/children", json=child_body(birth=date(2010, 3, 1)))).json()
        young = placement_body(child["id"], start=date(2025, 2, 28), form="stodboende")
        body = assert_problem(await client.post("/v1/placements", json=young), 422, "body.form")
        assert "16-20" in body["detail"]
        ten = (await client.post("/v1/children", json=child_body(2, birth=date(2015, 1, 1)))).json()
        assert_problem(
            await client.post(
                "/v1/placements", json=placement_body(ten["id"], start=date(2025, 6, 1), form="stodboende")
            ),
            422,
            "body.form",
        )
        placed = await client.post("/v1/placements", json=placement_body(child["id"], start=date(2025, 2, 28)))
        assert placed.status_code == 201
        changed = await client.patch(f"/v1/placements/{placed.json()['id']}", json={"form": "stodboende"})
        assert_problem(changed, 422, "body.form")
    async with service_client("placement", settings_override={"stodboende_min_age": 15}) as client:
        other = (await client.post("/v1/children", json=child_body(3, birth=date(2009, 6, 1)))).json()
        ok = await client.post(
            "/v1/placements", json=placement_body(other["id"], start=date(2025, 1, 1), form="stodboende")
        )
        assert ok.status_code == 201, ok.text


# --- finding 7: outside the municipality --------------------------------------------------------


async def test_outside_municipality_is_recorded_and_protected_for_a_protected_child(service_client, tokens, settings):
    async with service_client("placement") as client:
        open_child = (await client.post("/v1/children", json=child_body(1))).json()
        hidden_child = (await client.post("/v1/children", json=child_body(2, protected=True))).json()
        ids = []
        for c in (open_child, hidden_child):
            resp = await client.post(
                "/v1/placements", json=placement_body(c["id"], start=date(2025, 8, 1), outside_municipality=True)
            )
            assert resp.status_code == 201, resp.text
            assert resp.json()["outside_municipality"] is True  # admin sees it
            ids.append(resp.json()["id"])
        caseworker = tokens.headers("caseworker", district="Farsta", subject="someone-else")
        seen = [(await client.get(f"/v1/placements/{i}", headers=caseworker)).json() for i in ids]
        assert [p["outside_municipality"] for p in seen] == [True, None]
        snapshots = [(await client.get(f"/v1/placements/{i}/snapshot")).json() for i in ids]
        assert [s["outside_municipality"] for s in snapshots] == [True, None]
        fixed = await client.patch(f"/v1/placements/{ids[0]}", json={"outside_municipality": False})
        assert fixed.json()["outside_municipality"] is False
    payloads = [r["payload"] for r in await fetch(settings, "SELECT payload FROM outbox ORDER BY seq")]
    datas = [(json.loads(p) if isinstance(p, str) else p)["data"] for p in payloads]
    assert [d["outside_municipality"] for d in datas] == [True, None, False]


# --- finding 8: the city's table to the last column ---------------------------------------------


async def test_same_day_placement_counts_and_total_is_the_plain_sum_of_shown_cells(service_client):
    from tests.placement.test_reports_placement import People

    async with service_client("placement", settings_override=FAST) as client:
        people = People(client)
        await people.many([Spec("Bromma", "jourhem", date(2020, 7, 1), end=date(2020, 7, 1))] * 4)
        day = (await client.get("/v1/reports/placements", params={"from": "2020-07-01", "to": "2020-07-01"})).json()
        assert rows_by_district(day)["Bromma"]["jourhem"] == 4
        before = (await client.get("/v1/reports/placements", params={"from": "2020-06-30", "to": "2020-06-30"})).json()
        after = (await client.get("/v1/reports/placements", params={"from": "2020-07-02", "to": "2020-07-02"})).json()
        assert rows_by_district(before)["Bromma"]["jourhem"] == 0 and rows_by_district(after)["Bromma"]["jourhem"] == 0
        bromma = rows_by_district(day)["Bromma"]
        assert (bromma["total"], bromma["children"]) == (4, 4)


# --- finding 3: obruten import SERVICE FILE -------------------------------------------------------


async def test_obruten_import_sends_a_file_and_prints_the_report(live_service, tokens, tmp_path, capsys):
    import asyncio

    from shared.local.cli import main

    file = tmp_path / "placements.ndjson"
    good = line("C-1", luhn_pnr(date(2012, 5, 5), 321), start=date(2025, 4, 1))
    bad = {**line("C-2", luhn_pnr(date(2012, 5, 6), 322), start=date(2025, 4, 1)), "form": "castle"}
    file.write_text(ndjson([good, bad]))
    async with live_service("placement") as url:
        argv = ["import", "placement", str(file), "--url", url, "--token", tokens("admin")]
        assert await asyncio.to_thread(main, argv) == 1  # a line was refused
        out = capsys.readouterr().out
        assert out.splitlines()[0] == "created 1, unchanged 0, refused 1"
        assert out.splitlines()[1].startswith("line 2: refused: form: ")
        file.write_text(ndjson([good]))
        assert await asyncio.to_thread(main, [*argv, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert (report["unchanged"], report["lines"][0]["status"]) == (1, "unchanged")
        denied = ["import", "placement", str(file), "--url", url, "--token", "not-a-token"]
        assert await asyncio.to_thread(main, denied) == 2
    assert await asyncio.to_thread(main, ["import", "placement", str(tmp_path / "missing.ndjson")]) == 2
