"""Signing in and out: OpenID Connect when a provider is configured, else the development form.

The development sign-in is only registered when no provider is configured (`create_app`), so
no setting, header or request can reach it while one is."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

import jwt
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from services.web.access import home
from services.web.context import SessionDep, Web, WebDep, checked_form, web_runtime
from services.web.oidc import SignInFailed
from services.web.people import register_email
from services.web.sessions import PendingLogin, WebSession, safe_next, same_secret
from shared.web.auth import Authenticator, Role, mint_token

log = logging.getLogger("obruten.web.signin")

# People's roles: a service account does not sign in to pages.
PERSON_ROLES = [r.value for r in Role if r is not Role.service]


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


async def _start_session(
    request: Request, web: Web, token: str, *, development: bool, email: str | None = None, next: str | None = None
) -> Response:
    authenticator: Authenticator = web_runtime(request.app).authenticator
    principal = await asyncio.to_thread(authenticator.verify, token)
    expires = float(jwt.decode(token, options={"verify_signature": False}).get("exp", time.time() + 3600))
    session = WebSession(principal=principal, token=token, expires_at=expires, development=development, email=email)
    response = _see_other(next or home(principal))
    web.sessions.create(response, session)
    response.delete_cookie("obruten_login", path="/")
    if email:
        await register_email(web.backend.person(token), principal.subject, email)
    return response


common = APIRouter()


@common.post("/logout")
async def logout(request: Request, web: WebDep, session: SessionDep) -> Response:
    await checked_form(request, session)
    response = _see_other("/login")
    web.sessions.end(request, response)
    return response


oidc_router = APIRouter()


@oidc_router.get("/login")
async def login_page(request: Request, web: WebDep) -> Response:
    ctx = {"failed": request.query_params.get("failed") == "1", "next": safe_next(request.query_params.get("next"))}
    return web.pages.render(request, "login.html", ctx)


@oidc_router.get("/login/start")
async def login_start(request: Request, web: WebDep) -> Response:
    state, verifier, nonce = web.oidc.new_secrets()
    url = await web.oidc.authorization_url(state, verifier, nonce)
    response = RedirectResponse(url, status_code=302)
    pending = PendingLogin(
        csrf=state, code_verifier=verifier, nonce=nonce, next=safe_next(request.query_params.get("next"))
    )
    web.sessions.begin_login(response, pending)
    return response


@oidc_router.get("/auth/callback")
async def callback(request: Request, web: WebDep) -> Response:
    pending = web.sessions.pending_login(request, consume=True)
    state, code = request.query_params.get("state"), request.query_params.get("code")
    try:
        if pending is None or pending.code_verifier is None or pending.nonce is None:
            raise SignInFailed("no sign-in under way in this browser")
        if not same_secret(state, pending.csrf) or not code:
            raise SignInFailed("state does not match or no code")
        tokens = await web.oidc.exchange(code, pending.code_verifier, pending.nonce)
        email = tokens.id_claims.get("email")
        return await _start_session(
            request,
            web,
            tokens.api_token,
            development=False,
            email=email if isinstance(email, str) else None,
            next=pending.next,
        )
    except (SignInFailed, jwt.PyJWTError, ValueError) as exc:
        log.warning("sign-in refused", extra={"reason": str(exc)})
        return _see_other("/login?failed=1")


dev_router = APIRouter()


@dev_router.get("/login")
async def dev_login_page(request: Request, web: WebDep) -> Response:
    pending = PendingLogin(csrf=secrets.token_urlsafe(32), next=safe_next(request.query_params.get("next")))
    response = web.pages.render(request, "dev_login.html", {"roles": PERSON_ROLES, "login_csrf": pending.csrf})
    web.sessions.begin_login(response, pending)
    return response


@dev_router.post("/login")
async def dev_login(request: Request, web: WebDep) -> Response:
    pending = web.sessions.pending_login(request, consume=True)
    form = await request.form()
    role, district = str(form.get("role", "")), str(form.get("district", "")) or None
    if pending is None or not same_secret(str(form.get("csrf_token", "")), pending.csrf):
        return _see_other("/login")
    if role not in PERSON_ROLES or (district is not None and district not in web.settings.districts):
        return _see_other("/login")
    if web.dev_key is None:
        return web.pages.render(request, "error.html", {"kind": "no_dev_key"}, status=503)
    token = mint_token(
        web.dev_key,
        subject=f"dev:{role}:{district or 'city'}",
        roles=[role],
        district=district,
        issuer=web.settings.jwt_issuer,
        audience=web.settings.jwt_audience,
        ttl_seconds=8 * 3600,
    )
    return await _start_session(request, web, token, development=True, next=pending.next)
