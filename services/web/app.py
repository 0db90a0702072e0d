"""The web service: server-rendered pages (Jinja2, htmx) over the four services' APIs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.web import child, followup, inbox, people, search, signin
from services.web.backend import ApiError, Backend, Unavailable
from services.web.context import Forbidden, SignInRequired, Web, WebRuntime
from services.web.oidc import OidcClient
from services.web.render import Pages
from services.web.sessions import SessionStore, safe_next
from services.web.settings import WebSettings
from services.web.texts import Texts
from shared.kernel.clock import Clock, SystemClock
from shared.kernel.settings import Settings, get_settings
from shared.web.auth import Authenticator

log = logging.getLogger("obruten.web")


def content_security_policy(settings: Settings) -> str:
    # No inline script, no inline style, nothing from elsewhere. Forms post here only.
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def public_url(settings: Settings) -> str:
    # The configured address only when set: its default names the standard port, and a test or a
    # second instance on another port must send the provider back to itself.
    if "web_url" in settings.model_fields_set:
        return settings.web_url.rstrip("/")
    return f"http://{settings.host}:{settings.web_port}"


def _parts(settings: Settings, config: WebSettings, clock: Clock | None) -> Web:
    texts = Texts("sv")
    web = Web(
        settings=settings,
        config=config,
        texts=texts,
        pages=Pages(settings, config, texts),
        sessions=SessionStore(config),
        backend=Backend(settings),
        clock=clock or SystemClock(),
    )
    if config.oidc_issuer:
        web.oidc = OidcClient(config, f"{public_url(settings)}/auth/callback")
    elif settings.jwt_private_key_file and settings.jwt_private_key_file.exists():
        web.dev_key = settings.jwt_private_key_file.read_bytes()
    return web


def create_app(
    settings: Settings | None = None, clock: Clock | None = None, service_settings: WebSettings | None = None
) -> FastAPI:
    settings = settings or get_settings()
    config = service_settings or WebSettings()
    if config.plain_http and urlsplit(public_url(settings)).scheme == "https":
        raise ValueError("OBRUTEN_WEB_PLAIN_HTTP is for a plain-http address on this machine only")
    # httpx logs every call's URL at INFO; the web service logs its own refusals instead.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    web = _parts(settings, config, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await web.backend.close()

    app = FastAPI(title="Obruten web", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.runtime = WebRuntime(web=web, settings=settings, authenticator=Authenticator(settings))
    _install_headers(app, content_security_policy(settings))
    static = resources.files("services.web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.include_router(signin.oidc_router if config.oidc_issuer else signin.dev_router)
    for router in (signin.common, inbox.router, child.router, search.router, followup.router, people.router):
        app.include_router(router)
    _install_handlers(app, web)
    _install_operations(app)
    return app


def _install_headers(app: FastAPI, csp: str) -> None:
    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if request.url.path.startswith("/static/"):
            # File names carry their version; a new version is a new name.
            response.headers["Cache-Control"] = "public, max-age=86400"
        else:
            # Pages carry personal data: never kept by the browser or a proxy.
            response.headers["Cache-Control"] = "no-store"
        return response


def _install_operations(app: FastAPI) -> None:
    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}


def _install_handlers(app: FastAPI, web: Web) -> None:
    def page(request: Request, kind: str, status: int) -> Response:
        session = web.sessions.current(request)
        return web.pages.render(request, "error.html", {"kind": kind}, session=session, status=status)

    def sign_in(request: Request) -> Response:
        if request.headers.get("HX-Request"):
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        # Back here once signed in (a mail's link to an alert): the path holds pseudonymous ids only.
        back = safe_next(request.url.path) if request.method == "GET" and request.url.path != "/" else None
        return RedirectResponse(f"/login?next={quote(back)}" if back else "/login", status_code=303)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return sign_in(request)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return page(request, "forbidden", 403)

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> Response:
        if exc.status == 401:
            response = sign_in(request)
            web.sessions.end(request, response)
            return response
        if exc.status == 403:
            return page(request, "forbidden", 403)
        if exc.status == 404:
            return page(request, "not_found", 404)
        log.warning("a service refused a page's call", extra={"status": exc.status})
        return page(request, "failed", 502)

    @app.exception_handler(Unavailable)
    async def _unavailable(request: Request, exc: Unavailable) -> Response:
        return page(request, "unavailable", 503)

    @app.exception_handler(ValueError)
    async def _bad_id(request: Request, exc: ValueError) -> Response:
        # A malformed id in a path or form: the same answer as an id that does not exist.
        return page(request, "not_found", 404)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return page(request, "not_found" if exc.status_code == 404 else "failed", exc.status_code)
