"""What every route needs: the service's parts, the person signed in, a checked form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from services.web.access import Page, may_see
from services.web.backend import Backend, PersonApi
from services.web.render import Pages
from services.web.sessions import SessionStore, WebSession, same_secret
from services.web.settings import WebSettings
from services.web.texts import Texts
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings
from shared.web.auth import Authenticator


@dataclass
class Web:
    settings: Settings
    config: WebSettings
    texts: Texts
    pages: Pages
    sessions: SessionStore
    backend: Backend
    clock: Clock
    oidc: Any = None  # services.web.oidc.OidcClient when a provider is configured
    # The local signing key for development sign-in; never loaded while a provider is configured.
    dev_key: bytes | None = None


@dataclass(kw_only=True)
class WebRuntime:
    """The web app's one attribute on app.state (a service app keeps a ServiceRuntime there)."""

    web: Web
    settings: Settings
    authenticator: Authenticator


def web_runtime(app: FastAPI) -> WebRuntime:
    found = getattr(app.state, "runtime", None)
    if not isinstance(found, WebRuntime):
        raise RuntimeError("this app has no web runtime (the web app is built by services.web.app.create_app)")
    return found


class SignInRequired(Exception):
    """No live session: sign in (again)."""


class Forbidden(Exception):
    """The person's roles do not open this page, or a form came without its CSRF token."""


async def get_web(request: Request) -> Web:
    web: Web = web_runtime(request.app).web
    return web


WebDep = Annotated[Web, Depends(get_web)]


async def current_session(request: Request, web: WebDep) -> WebSession:
    session = web.sessions.current(request)
    if session is None:
        raise SignInRequired()
    request.state.session = session
    return session


SessionDep = Annotated[WebSession, Depends(current_session)]


def page_session(page: Page) -> Any:
    async def dependency(session: SessionDep) -> WebSession:
        if not may_see(session.principal, page):
            raise Forbidden()
        return session

    return Depends(dependency)


def api(web: Web, session: WebSession) -> PersonApi:
    return web.backend.person(session.token)


async def checked_form(request: Request, session: WebSession) -> dict[str, str]:
    """The posted form's fields, once its CSRF token matched the session's (synchroniser token)."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not same_secret(fields.pop("csrf_token", None), session.csrf):
        raise Forbidden()
    return fields
