"""Barn (/children/{child_id}): one child's timeline and the forms to act on it.

Each form posts here; the body goes to the service unchanged but for empty fields (left out),
and a refusal is shown beside the field the problem+json names, the form filled in as sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.web.access import Page
from services.web.backend import ApiError
from services.web.child_data import load_child
from services.web.context import Web, WebDep, api, checked_form, page_session
from services.web.sessions import WebSession

router = APIRouter()


@dataclass(frozen=True)
class Action:
    service: str
    path: Callable[[str], str]
    fields: tuple[str, ...]
    # The hidden field naming the record the form acts on.
    target: str = "placement_id"
    fixed: tuple[tuple[str, str], ...] = ()


ACTIONS: dict[str, Action] = {
    "school_plan": Action(
        "school",
        lambda _: "/v1/school-plans",
        ("placement_id", "drawn_up_on", "planned_provision", "planned_school_unit_code", "responsible"),
    ),
    "school_start": Action(
        "school", lambda _: "/v1/school-starts", ("placement_id", "start_date", "school_unit_code", "provision")
    ),
    "school_end": Action("school", lambda _: "/v1/school-ends", ("placement_id", "end_date", "reason")),
    "exam_book": Action(
        "health",
        lambda _: "/v1/examinations",
        ("placement_id", "kind", "date", "provider"),
        fixed=(("status", "booked"),),
    ),
    "exam_outcome": Action(
        "health",
        lambda exam_id: f"/v1/examinations/{exam_id}/outcome",
        ("status", "date"),
        target="examination_id",
    ),
    "acknowledge": Action(
        "notify", lambda alert_id: f"/v1/alerts/{alert_id}/acknowledge", ("note",), target="alert_id"
    ),
}


# What a form here or on the search page has just done (a catalogue key under `done.`).
DONE = frozenset(ACTIONS) | {"placement_start", "placement_move", "placement_end"}


def _id(value: str) -> str:
    return str(uuid.UUID(value))


async def _render(
    request: Request,
    web: Web,
    session: WebSession,
    child_id: str,
    *,
    errors: dict[str, dict[str, str]] | None = None,
    values: dict[str, dict[str, str]] | None = None,
    status: int = 200,
) -> Response:
    view = await load_child(api(web, session), child_id)
    ctx: dict[str, Any] = {
        "view": view,
        "today": web.clock.today().isoformat(),
        "done": request.query_params.get("done", "") if request.query_params.get("done") in DONE else "",
        "errors": errors or {},
        "values": values or {},
    }
    return web.pages.render(request, "child.html", ctx, session=session, status=status)


@router.get("/children/{child_id}")
async def child_page(
    child_id: str, request: Request, web: WebDep, session: WebSession = page_session(Page.child)
) -> Response:
    return await _render(request, web, session, _id(child_id))


@router.post("/children/{child_id}/{action}")
async def child_action(
    child_id: str, action: str, request: Request, web: WebDep, session: WebSession = page_session(Page.child)
) -> Response:
    child_id = _id(child_id)
    spec = ACTIONS.get(action)
    form = await checked_form(request, session)
    if spec is None:
        return await _render(request, web, session, child_id, status=404)
    target = _id(form.get(spec.target, ""))
    body: dict[str, Any] = {name: form[name].strip() for name in spec.fields if form.get(name, "").strip()}
    body.update(spec.fixed)
    key = f"{action}:{target}"
    try:
        await api(web, session).post(spec.service, spec.path(target), body)
    except ApiError as exc:
        if exc.status in (401, 403, 404) and not exc.field_errors().keys() - {"_"}:
            raise
        return await _render(
            request,
            web,
            session,
            child_id,
            errors={key: exc.field_errors()},
            values={key: form},
            status=exc.status if exc.status in (409, 422) else 422,
        )
    session.cache.clear()
    return RedirectResponse(f"/children/{child_id}?done={action}", status_code=303)
