"""A person's mail address and delivery choice, kept by notify (`PUT /v1/people/{subject}`).

At each sign-in whose token carries an `email` claim the address is handed to notify with the
person's own token; the settings page lets them choose immediate mails or a daily digest.
"""

from __future__ import annotations

import logging
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.web.access import Page
from services.web.backend import ApiError, PersonApi, Unavailable
from services.web.context import WebDep, api, checked_form, page_session
from services.web.sessions import WebSession

log = logging.getLogger("obruten.web.people")

Delivery = Literal["immediate", "digest"]
DELIVERIES: tuple[Delivery, ...] = ("immediate", "digest")


def _path(subject: str) -> str:
    return f"/v1/people/{quote(subject, safe='')}"


async def current_delivery(person: PersonApi, subject: str) -> Delivery | None:
    try:
        found = await person.get("notify", _path(subject))
    except (ApiError, Unavailable):
        return None
    value = found.get("delivery") if isinstance(found, dict) else None
    return value if value in DELIVERIES else None


async def register_email(person: PersonApi, subject: str, email: str, delivery: Delivery | None = None) -> bool:
    """Tell notify where to mail this person. A notify without the route (404, 405) or one that
    is down does not stop the sign-in; nothing personal is logged."""
    chosen = delivery or await current_delivery(person, subject) or "immediate"
    try:
        await person.put("notify", _path(subject), {"email": email, "delivery": chosen})
        return True
    except ApiError as exc:
        log.warning("notify did not take the mail address", extra={"status": exc.status})
    except Unavailable:
        log.warning("notify unreachable; mail address not registered")
    return False


router = APIRouter()


@router.get("/settings")
async def settings_page(request: Request, web: WebDep, session: WebSession = page_session(Page.settings)) -> Response:
    delivery = await current_delivery(api(web, session), session.principal.subject) if session.email else None
    return web.pages.render(
        request, "settings.html", {"delivery": delivery or "immediate", "saved": False}, session=session
    )


@router.post("/settings")
async def save_settings(request: Request, web: WebDep, session: WebSession = page_session(Page.settings)) -> Response:
    form = await checked_form(request, session)
    choice = form.get("delivery")
    errors: dict[str, str] = {}
    saved = False
    if choice not in DELIVERIES:
        errors["delivery"] = web.texts("settings.choose")
    elif not session.email:
        errors["_"] = web.texts("settings.no_email")
    else:
        saved = await register_email(api(web, session), session.principal.subject, session.email, choice)
        if not saved:
            errors["_"] = web.texts("settings.not_saved")
    return web.pages.render(
        request,
        "settings.html",
        {"delivery": choice if choice in DELIVERIES else "immediate", "saved": saved, "errors": errors},
        session=session,
        status=200 if saved else 422,
    )
