"""Uppföljning (/followup): days to school start month by month (chart and table), the children
waiting now, examination coverage, open alerts by level, and the district × form table, each
with a CSV download."""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.web import followup_data as data
from services.web.access import Page, row_level
from services.web.backend import ApiError, PersonApi
from services.web.charts import days_chart
from services.web.context import Web, WebDep, api, page_session
from services.web.sessions import WebSession

router = APIRouter()

SERIES_TTL_SECONDS = 60.0
MONTHLY_COLUMNS = ("month", "began", "timed", "median_days", "p90_days", "pct_within_7_days")
# A chart is an image: its own inline styles are all it may use, never a script.
CHART_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"


def _year(request: Request, web: Web) -> int:
    this = web.clock.today().year
    raw = request.query_params.get("year", "")
    return int(raw) if raw.isdigit() and this - 10 <= int(raw) <= this else this


def _district(session: WebSession) -> str | None:
    """A district's people see their district; the central office the whole city."""
    return session.principal.district if row_level(session.principal) else None


async def _optional(coro: Any) -> Any:
    try:
        return await coro
    except ApiError as exc:
        if exc.status in (401,):
            raise
        return None


async def _series(web: Web, session: WebSession) -> list[dict[str, Any]]:
    """The monthly figures, kept a minute in the session: the page and its chart both show them
    (twelve report calls), and a month's figures change slowly."""
    district = _district(session)
    key = f"followup:monthly:{district}"
    hit = session.cache.get(key)
    now = time.monotonic()
    if hit is not None and hit[0] > now:
        return hit[1]  # type: ignore[return-value]
    series = await data.monthly(api(web, session), district, web.clock.today())
    session.cache[key] = (now + SERIES_TTL_SECONDS, series)
    return series


@router.get("/followup")
async def followup(request: Request, web: WebDep, session: WebSession = page_session(Page.followup)) -> Response:
    """The page and its headings at once; each section comes in its own request (htmx), so the
    first figures show while the slower ones are still being counted."""
    year = _year(request, web)
    ctx = {"district": _district(session), "year": year, "name_query": f"year={year}"}
    return web.pages.render(request, "followup.html", ctx, session=session)


@router.get("/followup/part/{name}")
async def followup_part(
    name: str, request: Request, web: WebDep, session: WebSession = page_session(Page.followup)
) -> Response:
    person, today, district, year = api(web, session), web.clock.today(), _district(session), _year(request, web)
    ctx: dict[str, Any] = {"district": district, "year": year}
    if name == "monthly":
        ctx["series"] = await _series(web, session)
    elif name == "waiting":
        ctx["waiting"] = await _optional(data.waiting_now(person, district, today)) if district else None
        ctx["figures"] = await data.year_figures(person, district, today) if not district else {}
    elif name == "exams":
        ctx["figures"] = await data.year_figures(person, district, today)
    elif name == "levels":
        ctx["levels"] = await _optional(data.alerts_by_level(person, district)) if district else None
    elif name == "table":
        ctx.update(
            table=await data.placements_table(person, district, year), years=list(range(today.year, today.year - 6, -1))
        )
    else:
        raise ApiError(404, {"title": "Not found"})
    return web.pages.render(request, f"_followup_{name}.html", ctx, session=session)


@router.get("/followup/chart.svg")
async def chart(web: WebDep, session: WebSession = page_session(Page.followup)) -> Response:
    svg = days_chart(await _series(web, session), web.texts)
    return Response(svg, media_type="image/svg+xml", headers={"Content-Security-Policy": CHART_CSP})


@router.get("/followup/{name}.csv")
async def download(
    name: str, request: Request, web: WebDep, session: WebSession = page_session(Page.followup)
) -> Response:
    person, today, district = api(web, session), web.clock.today(), _district(session)
    if name == "monthly":
        return _csv(name, MONTHLY_COLUMNS, await _series(web, session))
    if name == "alerts_by_level" and district:
        return _csv(name, ("level", "level_name", "count"), await data.alerts_by_level(person, district))
    year_period = {"from": (today - timedelta(days=364)).isoformat(), "to": today.isoformat(), "district": district}
    sources: dict[str, tuple[str, str, dict[str, Any]]] = {
        "school_starts": ("school", "/v1/reports/school-starts", year_period),
        "examinations": ("health", "/v1/reports/examinations", year_period),
        "placements": (
            "placement",
            "/v1/reports/placements",
            {"from": f"{_year(request, web)}-01-01", "to": f"{_year(request, web)}-12-31", "district": district},
        ),
    }
    if name == "waiting" and district:
        sources["waiting"] = ("school", "/v1/reports/school-starts/rows", year_period)
    if name not in sources:
        raise ApiError(404, {"title": "Not found"})
    service, path, params = sources[name]
    return await _proxy_csv(person, name, service, path, params)


async def _proxy_csv(person: PersonApi, name: str, service: str, path: str, params: dict[str, Any]) -> Response:
    resp = await person.request("GET", service, path, params=params, accept="text/csv")
    return Response(
        resp.content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _csv(name: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
