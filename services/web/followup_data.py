"""The figures of Uppföljning, read from the services' report endpoints.

A district's people see their district; the central office (no district in its token) sees the
city as a whole: the `total` rows of the same reports, whose small counts the services already
hide. Only district roles read the row-level waiting list and the open alerts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from services.web.backend import PersonApi

UNRESOLVED = ("warning", "open", "acknowledged")


@dataclass(frozen=True)
class Month:
    first: date
    last: date

    @property
    def label(self) -> str:
        return self.first.strftime("%Y-%m")


def last_months(today: date, count: int = 12) -> list[Month]:
    """The `count` calendar months up to and including this one (this one up to today)."""
    months: list[Month] = []
    first = today.replace(day=1)
    last = today
    for _ in range(count):
        months.append(Month(first, last))
        last = first - timedelta(days=1)
        first = last.replace(day=1)
    return list(reversed(months))


def pick_row(report: dict[str, Any], district: str | None) -> dict[str, Any] | None:
    """The district's row of a report's first table, or the city's `total` row."""
    wanted = district or "total"
    rows = report["tables"][0]["rows"]
    return next((r for r in rows if r.get("district") == wanted), None)


def number(value: Any) -> float | None:
    """A figure for the chart: hidden (`*`) and empty are no point."""
    return float(value) if isinstance(value, int | float) else None


async def monthly(person: PersonApi, district: str | None, today: date) -> list[dict[str, Any]]:
    months = last_months(today)
    reports = await asyncio.gather(
        *(
            person.get(
                "school",
                "/v1/reports/school-starts",
                {"from": m.first.isoformat(), "to": m.last.isoformat(), "district": district},
            )
            for m in months
        )
    )
    series = []
    for month, report in zip(months, reports, strict=True):
        row = pick_row(report, district) or {}
        series.append(
            {
                "month": month.label,
                "began": row.get("began"),
                "timed": row.get("timed"),
                "median_days": row.get("median_days"),
                "p90_days": row.get("p90_days"),
                "pct_within_7_days": row.get("pct_within_7_days"),
            }
        )
    return series


async def waiting_now(person: PersonApi, district: str, today: date) -> list[dict[str, Any]]:
    report = await person.get(
        "school",
        "/v1/reports/school-starts/rows",
        {"district": district, "from": (today - timedelta(days=365)).isoformat(), "to": today.isoformat()},
    )
    rows = [r for r in report["tables"][0]["rows"] if r["status"] == "waiting"]
    return sorted(rows, key=lambda r: -int(r["days"]))


async def year_figures(person: PersonApi, district: str | None, today: date) -> dict[str, Any]:
    """Figures over the last 365 days: school starts (with waiting), examinations."""
    period = {"from": (today - timedelta(days=364)).isoformat(), "to": today.isoformat(), "district": district}
    starts, exams = await asyncio.gather(
        person.get("school", "/v1/reports/school-starts", period),
        person.get("health", "/v1/reports/examinations", period),
    )
    return {"starts": pick_row(starts, district), "exams": pick_row(exams, district), "period": period}


async def alerts_by_level(person: PersonApi, district: str) -> list[dict[str, Any]]:
    pages = await asyncio.gather(
        *(person.get_all("notify", "/v1/alerts", {"district": district, "status": s}) for s in UNRESOLVED)
    )
    counts: dict[tuple[int, str], int] = {}
    for alert in (a for page in pages for a in page):
        key = (-1, "warning") if alert["status"] == "warning" else (int(alert["level"] or 0), alert["level_name"] or "")
        counts[key] = counts.get(key, 0) + 1
    return [{"level": lv, "level_name": name, "count": n} for (lv, name), n in sorted(counts.items())]


async def placements_table(person: PersonApi, district: str | None, year: int) -> dict[str, Any]:
    report: dict[str, Any] = await person.get(
        "placement",
        "/v1/reports/placements",
        {"from": f"{year}-01-01", "to": f"{year}-12-31", "district": district},
    )
    table: dict[str, Any] = report["tables"][0]
    return table
