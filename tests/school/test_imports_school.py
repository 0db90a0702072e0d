"""Issue 14, finding 3 in the school and health services: a city's history entered through
`POST /v1/imports` in each recording service, the school and health lines naming their
placements by the external_id the placement import gave them. Today is 2025-09-01."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import httpx

from tests.fixtures.factories import luhn_pnr
from tests.fixtures.support import eventually
from tests.placement.test_imports_placement import NDJSON, line, send
from tests.school.test_school import count_rows


async def _placements(placement: httpx.AsyncClient, settings: Any, service_rows: Any) -> None:
    """Four children placed in Farsta on 2025-08-04, 05, 06, 07 (cases P-0..P-3)."""
    lines = [line(f"P-{i}", luhn_pnr(date(2014, 2, 1 + i), 500 + i), start=date(2025, 8, 4 + i)) for i in range(4)]
    report = await send(placement, lines)
    assert report["created"] == 4, report

    async def known() -> bool:
        return await service_rows(settings, "placement_view") == 4

    await eventually(known, timeout=30)


async def test_school_history_imported_by_placement_external_id(service_client, settings):
    async with service_client("placement") as placement, service_client("school") as school:
        await _placements(placement, settings, count_rows)
        lines: list[dict[str, Any]] = [
            {
                "record": "school_plan",
                "external_id": "S-plan-0",
                "placement_external_id": "P-0",
                "drawn_up_on": "2025-08-04",
            },
            # P-0 starts on day 3, stops on 2025-08-20, starts again on 2025-08-25.
            {
                "record": "school_start",
                "external_id": "S-0a",
                "placement_external_id": "P-0",
                "start_date": "2025-08-07",
                "provision": "home_school",
            },
            {
                "record": "school_end",
                "external_id": "E-0a",
                "placement_external_id": "P-0",
                "end_date": "2025-08-20",
                "reason": "moved",
            },
            {
                "record": "school_start",
                "external_id": "S-0b",
                "placement_external_id": "P-0",
                "start_date": "2025-08-25",
                "school_unit_code": "12345678",
            },
            {
                "record": "school_start",
                "external_id": "S-1",
                "placement_external_id": "P-1",
                "start_date": "2025-08-12",
                "provision": "home_school",
            },
            {
                "record": "school_start",
                "external_id": "S-2",
                "placement_external_id": "P-2",
                "start_date": "2025-08-16",
                "provision": "home_school",
            },
            # Refused: an unknown placement, both references, a start before its placement.
            {
                "record": "school_start",
                "external_id": "S-x",
                "placement_external_id": "P-99",
                "start_date": "2025-08-16",
                "provision": "home_school",
            },
            {
                "record": "school_start",
                "external_id": "S-y",
                "placement_external_id": "P-3",
                "placement_id": "7d57cb2b-0417-454d-b943-c64c8d9a2a7c",
                "start_date": "2025-08-16",
                "provision": "home_school",
            },
            {
                "record": "school_start",
                "external_id": "S-3",
                "placement_external_id": "P-3",
                "start_date": "2025-08-01",
                "provision": "home_school",
            },
            {
                "record": "school_start",
                "external_id": "S-z",
                "placement_external_id": "P-3",
                "start_date": "2025-08-30",
            },
            {"record": "lunch", "external_id": "L-1"},
        ]
        report = await send(school, lines)
        got = [(r["status"], r["field"]) for r in report["lines"]]
        assert got == [
            ("created", None),
            ("created", None),
            ("created", None),
            ("created", None),
            ("created", None),
            ("created", None),
            ("refused", "placement_external_id"),
            ("refused", "placement_id"),
            ("refused", "start_date"),
            ("refused", "provision"),
            ("refused", "record"),
        ], report["lines"]
        # A refusal echoes no value of the line.
        assert "P-99" not in json.dumps(report["lines"][6])
        assert all(r["reason"] and "2014" not in r["reason"] for r in report["lines"] if r["status"] == "refused")

        listed = (
            await school.get(
                "/v1/reports/school-starts/rows",
                params={"from": "2025-08-01", "to": "2025-08-31", "district": "Farsta"},
            )
        ).json()
        assert [
            (r["placement_date"], r["school_start_date"], r["days"], r["status"]) for r in listed["tables"][0]["rows"]
        ] == [
            ("2025-08-04", "2025-08-07", 3, "started"),
            ("2025-08-05", "2025-08-12", 7, "started"),
            ("2025-08-06", "2025-08-16", 10, "started"),
            ("2025-08-07", None, 25, "waiting"),
        ]
        again = await send(school, lines[:6])
        assert [r["status"] for r in again["lines"]] == ["unchanged"] * 6
        assert [r["id"] for r in again["lines"]] == [r["id"] for r in report["lines"][:6]]
        changed = await send(school, [{**lines[4], "start_date": "2025-08-13"}])
        assert (changed["lines"][0]["status"], changed["lines"][0]["field"]) == ("refused", "external_id")
        assert await count_rows(settings, "school_start") == 4

        wrong_type = await school.post("/v1/imports", content=b"{}", headers={"Content-Type": "application/json"})
        assert wrong_type.status_code == 415


async def test_health_history_imported_by_placement_external_id(service_client, settings):
    from tests.health.test_health import count_rows as health_rows

    async with service_client("placement") as placement, service_client("health") as health:
        await _placements(placement, settings, health_rows)
        lines = [
            {
                "external_id": "H-0",
                "placement_external_id": "P-0",
                "kind": "health",
                "status": "completed",
                "date": "2025-08-10",
            },
            {
                "external_id": "H-1",
                "placement_external_id": "P-0",
                "kind": "dental",
                "status": "booked",
                "date": "2025-09-15",
                "provider": "Folktandvården",
            },
            {
                "external_id": "H-2",
                "placement_external_id": "P-1",
                "kind": "health",
                "status": "completed",
                "date": "2025-09-02",
            },
        ]
        report = await send(health, lines)
        assert [(r["status"], r["field"]) for r in report["lines"]] == [
            ("created", None),
            ("created", None),
            ("refused", "date"),  # a completed examination in the future
        ]
        again = await send(health, lines[:2])
        assert [r["status"] for r in again["lines"]] == ["unchanged", "unchanged"]
        assert await health_rows(settings, "examination") == 2
        resp = await health.post("/v1/imports", content=b"\n", headers=NDJSON)
        assert resp.json() == {"created": 0, "unchanged": 0, "refused": 0, "lines": []}
