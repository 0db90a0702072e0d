"""Sök och registrera (/search): find a child by personnummer, register one, and start, move or
end a placement. The personnummer only ever travels in a POST body, never in a URL."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.web.access import Page
from services.web.backend import ApiError
from services.web.child import _id
from services.web.context import Web, WebDep, api, checked_form, page_session
from services.web.sessions import WebSession
from shared.contracts.vocabulary import LegalBasis, PlacementForm

router = APIRouter()

PLACEMENT_FIELDS = (
    "district",
    "form",
    "legal_basis",
    "duration",
    "start_date",
    "planned_end_date",
    "caseworker",
    "location",
)
VARIANTS = ("kinship", "agency_supported", "treatment_family", "with_parent")
END_REASONS = ("care_plan", "turned_18", "custody_transferred", "adoption", "breakdown", "moved", "other")


def placement_body(form: dict[str, str], prefix: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {
        name: form[f"{prefix}{name}"].strip() for name in PLACEMENT_FIELDS if form.get(f"{prefix}{name}", "").strip()
    }
    body["school_change"] = form.get(f"{prefix}school_change") == "true"
    body["variants"] = [v for v in VARIANTS if form.get(f"{prefix}variant_{v}") == "on"]
    return body


async def _render(
    request: Request,
    web: Web,
    session: WebSession,
    *,
    child: dict[str, Any] | None = None,
    errors: dict[str, dict[str, str]] | None = None,
    values: dict[str, dict[str, str]] | None = None,
    status: int = 200,
) -> Response:
    placements: list[dict[str, Any]] = []
    if child is not None:
        placements = await api(web, session).get_all("placement", "/v1/placements", {"child_id": child["id"]})
    ctx = {
        "child": child,
        "active": next((p for p in placements if p["end_date"] is None), None),
        "forms": [f.value for f in PlacementForm],
        "legal_bases": [b.value for b in LegalBasis],
        "variants": VARIANTS,
        "end_reasons": END_REASONS,
        "today": web.clock.today().isoformat(),
        "errors": errors or {},
        "values": values or {},
    }
    return web.pages.render(request, "search.html", ctx, session=session, status=status)


@router.get("/search")
async def search_page(request: Request, web: WebDep, session: WebSession = page_session(Page.search)) -> Response:
    return await _render(request, web, session)


@router.post("/search/{action}")
async def search_action(
    action: str, request: Request, web: WebDep, session: WebSession = page_session(Page.search)
) -> Response:
    form = await checked_form(request, session)
    person = api(web, session)
    child: dict[str, Any] | None = None
    try:
        if action == "lookup":
            body: dict[str, Any] = {"personnummer": form.get("personnummer", "")}
            child = await person.post("placement", "/v1/children/lookup", body)
        elif action == "register":
            body = {
                "personnummer": form.get("personnummer", ""),
                "district": form.get("district", ""),
                "protected_identity": form.get("protected_identity") == "on",
            }
            child = await person.post("placement", "/v1/children", body)
        else:
            child = await person.get("placement", f"/v1/children/{_id(form.get('child_id', ''))}")
            return await _placement_action(action, form, web, session, child)
    except ApiError as exc:
        if exc.status in (401, 403) and not exc.field_errors().keys() - {"_"}:
            raise
        reasons = exc.field_errors()
        if exc.status == 404 and action == "lookup":
            reasons = {"personnummer": web.texts("search.not_found")}
        kept = {k: v for k, v in form.items() if k != "personnummer"}
        return await _render(
            request, web, session, child=child, errors={action: reasons}, values={action: kept}, status=422
        )
    return await _render(request, web, session, child=child)


async def _placement_action(
    action: str, form: dict[str, str], web: Web, session: WebSession, child: dict[str, Any]
) -> Response:
    person = api(web, session)
    if action == "start":
        await person.post("placement", "/v1/placements", {**placement_body(form), "child_id": child["id"]})
    elif action == "move":
        body = {
            "move_date": form.get("move_date", ""),
            "end_reason": form.get("end_reason") or "moved",
            "next": {**placement_body(form, "next."), "start_date": form.get("move_date", "")},
        }
        await person.post("placement", f"/v1/placements/{_id(form.get('placement_id', ''))}/move", body)
    elif action == "end":
        body = {"end_date": form.get("end_date", ""), "end_reason": form.get("end_reason", "")}
        await person.post("placement", f"/v1/placements/{_id(form.get('placement_id', ''))}/end", body)
    else:
        raise ApiError(404, {"title": "Not found"})
    session.cache.clear()
    return RedirectResponse(f"/children/{child['id']}?done=placement_{action}", status_code=303)
