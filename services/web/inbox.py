"""Larm (/): the district's open alerts and pre-warnings, most days without school first."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.web.access import Page
from services.web.backend import PersonApi
from services.web.context import Web, WebDep, api, page_session
from services.web.lookups import enrich_alerts
from services.web.sessions import WebSession
from shared.contracts.vocabulary import PlacementForm

router = APIRouter()

# Unresolved alerts: pre-warnings, open ones, and those someone has acknowledged.
UNRESOLVED = ("warning", "open", "acknowledged")
PAGE_ROWS = 50
RULES = ("school_gap", "school_plan_missing", "health_exam_missing", "dental_exam_missing")


def _filters(request: Request) -> dict[str, str]:
    q = request.query_params
    out = {
        "rule": q.get("rule", "") if q.get("rule", "") in RULES else "",
        "level": q.get("level", "") if q.get("level", "") == "warning" or q.get("level", "").isdigit() else "",
        "form": q.get("form", "") if q.get("form", "") in PlacementForm.__members__ else "",
        "mine": "1" if q.get("mine") == "1" else "",
        "rows": q.get("rows", "") if q.get("rows", "").isdigit() else "",
    }
    return out


async def _alerts(person: PersonApi, session: WebSession, web: Web, f: dict[str, str]) -> list[dict[str, Any]]:
    district = session.principal.district
    params = {"district": district, "rule": f["rule"] or None}
    pages = await asyncio.gather(
        *(person.get_all("notify", "/v1/alerts", {**params, "status": status}) for status in UNRESOLVED)
    )
    alerts = [a for page in pages for a in page]
    if f["level"] == "warning":
        alerts = [a for a in alerts if a["status"] == "warning"]
    elif f["level"]:
        alerts = [a for a in alerts if a["status"] != "warning" and str(a["level"]) == f["level"]]
    if f["form"] or f["mine"]:
        placements = await person.get_all(
            "placement",
            "/v1/placements",
            {"district": district, "form": f["form"] or None, "active_on": web.clock.today().isoformat()},
        )
        keep = {p["id"] for p in placements if not f["mine"] or p.get("caseworker") == session.principal.subject}
        alerts = [a for a in alerts if a["placement_id"] in keep]
    # Children without school first (the rule the page is for), longest first; then the rest.
    alerts.sort(key=lambda a: (a["rule"] != "school_gap", -int(a["counted_days"]), a["deadline"], a["id"]))
    return alerts


async def _table_context(request: Request, web: Web, session: WebSession) -> dict[str, Any]:
    f = _filters(request)
    person = api(web, session)
    alerts = await _alerts(person, session, web, f)
    shown_rows = min(int(f["rows"] or PAGE_ROWS), 500)
    rows = await enrich_alerts(person, session, alerts[:shown_rows])
    query = urlencode({k: v for k, v in f.items() if v})
    more = urlencode({**{k: v for k, v in f.items() if v}, "rows": shown_rows + PAGE_ROWS})
    return {"filters": f, "rows": rows, "total": len(alerts), "query": query, "more_query": more, "rules": RULES}


@router.get("/")
async def inbox(request: Request, web: WebDep, session: WebSession = page_session(Page.inbox)) -> Response:
    ctx = await _table_context(request, web, session)
    ctx["forms"] = [f.value for f in PlacementForm]
    return web.pages.render(request, "inbox.html", ctx, session=session)


@router.get("/partials/alerts")
async def alerts_partial(request: Request, web: WebDep, session: WebSession = page_session(Page.inbox)) -> Response:
    ctx = await _table_context(request, web, session)
    return web.pages.render(request, "_alerts.html", ctx, session=session)


@router.get("/alerts/{alert_id}")
async def alert_link(alert_id: str, web: WebDep, session: WebSession = page_session(Page.child)) -> Response:
    """Where notify's mails link to: the alert on its child's page."""
    alert = await api(web, session).get("notify", f"/v1/alerts/{_uuid(alert_id)}")
    return RedirectResponse(f"/children/{alert['child_id']}#alert-{alert['id']}", status_code=303)


def _uuid(value: str) -> str:
    import uuid

    return str(uuid.UUID(value))
