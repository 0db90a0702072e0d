"""The web service's sign-in, sessions and headers, in process (the pages' content and the
services behind them: tests/web/test_browser.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from services.web.context import web_runtime
from services.web.texts import Texts
from shared.kernel.settings import STOCKHOLM_DISTRICTS, Settings
from shared.web.auth import Role
from tests.fixtures.support import all_routes, service_app

TEMPLATES = Path(str(resources.files("services.web").joinpath("templates")))


def web_app(keys: tuple[Path, Path], **extra: object) -> FastAPI:
    """The web app on these keys; `extra` are its own settings (web_plain_http=, …)."""
    settings = Settings(jwt_private_key_file=keys[0], jwt_public_key_file=keys[1])
    app: FastAPI = service_app("web", settings, None, {"web_plain_http": True, **extra})
    return app


async def client_for(app: FastAPI, base_url: str = "http://127.0.0.1:8005") -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def web(keys: tuple[Path, Path]) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(web_app(keys)):
        yield client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the form carries a CSRF token"
    return found.group(1)


async def dev_sign_in(client: httpx.AsyncClient, role: str, district: str = "") -> httpx.Response:
    page = await client.get("/login")
    return await client.post("/login", data={"csrf_token": csrf_of(page.text), "role": role, "district": district})


async def test_development_sign_in_page_offers_every_role_and_district(web: httpx.AsyncClient) -> None:
    page = await web.get("/login")
    assert page.status_code == 200
    roles = re.search(r'<select id="role" name="role"[^>]*>(.*?)</select>', page.text, re.S)
    districts = re.search(r'<select id="district" name="district"[^>]*>(.*?)</select>', page.text, re.S)
    assert roles and districts
    assert re.findall(r'<option value="([^"]+)"', roles.group(1)) == [r.value for r in Role if r is not Role.service]
    assert re.findall(r'<option value="([^"]+)"', districts.group(1)) == STOCKHOLM_DISTRICTS
    assert '<button type="submit">' in page.text
    assert "Utvecklingsinloggning" in page.text


async def test_development_sign_in_makes_a_session_marked_as_such_on_every_page(web: httpx.AsyncClient) -> None:
    signed_in = await dev_sign_in(web, "caseworker", "Farsta")
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    cookie = next(c for c in signed_in.headers.get_list("set-cookie") if c.startswith("obruten_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # plain http, explicitly
    settings_page = await web.get("/settings")
    assert settings_page.status_code == 200
    text = " ".join(settings_page.text.split())
    assert "Utvecklingsinloggning" in text and "Socialsekreterare i Farsta" in text


async def test_session_cookie_is_secure_unless_plain_http_is_set(keys: tuple[Path, Path]) -> None:
    async for client in client_for(web_app(keys, web_plain_http=False), base_url="https://obruten.example"):
        signed_in = await dev_sign_in(client, "caseworker", "Farsta")
        cookie = next(c for c in signed_in.headers.get_list("set-cookie") if c.startswith("obruten_session="))
        assert "Secure" in cookie and "HttpOnly" in cookie


async def test_development_sign_in_cannot_exist_while_a_provider_is_configured(keys: tuple[Path, Path]) -> None:
    app = web_app(keys, web_oidc_issuer="http://127.0.0.1:9")
    async for client in client_for(app):
        page = await client.get("/login")
        assert 'name="role"' not in page.text and "Utvecklingsinloggning" not in page.text
        posted = await client.post("/login", data={"role": "admin", "district": ""})
        assert posted.status_code == 405
        assert web_runtime(client.app).web.dev_key is None
        assert "obruten_session" not in posted.headers.get("set-cookie", "")


async def test_a_form_without_its_csrf_token_is_refused(web: httpx.AsyncClient) -> None:
    await dev_sign_in(web, "caseworker", "Farsta")
    assert (await web.post("/settings", data={"delivery": "digest"})).status_code == 403
    assert (await web.post("/logout")).status_code == 403
    assert (await web.post("/logout", data={"csrf_token": "wrong"})).status_code == 403
    page = await web.get("/settings")
    out = await web.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert (await web.get("/settings")).status_code == 303, "signed out"


async def test_development_sign_in_needs_its_own_csrf_value(web: httpx.AsyncClient) -> None:
    await web.get("/login")
    refused = await web.post("/login", data={"csrf_token": "guess", "role": "admin", "district": ""})
    assert refused.status_code == 303 and refused.headers["location"] == "/login"
    assert "obruten_session" not in refused.headers.get("set-cookie", "")


async def test_an_idle_session_ends(keys: tuple[Path, Path]) -> None:
    async for client in client_for(web_app(keys, web_session_idle_minutes=1)):
        await dev_sign_in(client, "caseworker", "Farsta")
        assert (await client.get("/settings")).status_code == 200
        for session in web_runtime(client.app).web.sessions._sessions.values():
            session.last_seen -= 61
        expired = await client.get("/settings")
        assert expired.status_code == 303 and expired.headers["location"] == "/login?next=/settings"


async def test_sign_in_returns_to_the_page_asked_for_and_never_elsewhere(web: httpx.AsyncClient) -> None:
    asked = await web.get("/alerts/5f0c7a52-0b6e-4d43-9d5e-2f1c1f3e6a10")
    assert asked.headers["location"] == "/login?next=/alerts/5f0c7a52-0b6e-4d43-9d5e-2f1c1f3e6a10"
    page = await web.get(asked.headers["location"])
    back = await web.post("/login", data={"csrf_token": csrf_of(page.text), "role": "caseworker", "district": "Farsta"})
    assert back.headers["location"] == "/alerts/5f0c7a52-0b6e-4d43-9d5e-2f1c1f3e6a10"
    for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        page = await web.get("/login", params={"next": elsewhere})
        signed_in = await web.post(
            "/login", data={"csrf_token": csrf_of(page.text), "role": "caseworker", "district": "Farsta"}
        )
        assert signed_in.headers["location"] == "/", elsewhere


async def test_a_role_without_the_page_gets_403(web: httpx.AsyncClient) -> None:
    await dev_sign_in(web, "health_staff")
    for path in ("/", "/search", "/followup", "/children/00000000-0000-0000-0000-000000000000"):
        page = await web.get(path)
        assert page.status_code == 403, path
        assert "Ingen behörighet" in page.text


async def test_pages_are_not_cached_and_run_no_inline_script(web: httpx.AsyncClient) -> None:
    page = await web.get("/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text
    assert not re.search(r"<[^>]+\son[a-z]+=", page.text)
    htmx = await web.get("/static/vendor/htmx-2.0.8.min.js")
    assert htmx.status_code == 200 and htmx.text.startswith("var htmx=")


def test_no_asset_comes_from_elsewhere() -> None:
    """Every script, style and font the pages use is served by the service itself."""
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', text), path
        assert "<script>" not in text and "style=" not in text, path
    css = (TEMPLATES.parent / "static" / "app-1.css").read_text()
    assert "url(" not in css and "@import" not in css


def test_every_text_the_templates_name_is_in_the_catalogue() -> None:
    texts = Texts("sv")
    missing = []
    for path in TEMPLATES.rglob("*.html"):
        for key in re.findall(r"""t\(["']([a-z_]+\.[a-z_0-9]+)["']""", path.read_text()):
            if not texts.has(key):
                missing.append(f"{path.name}: {key}")
    assert not missing, missing


async def test_no_page_opens_without_signing_in(web: httpx.AsyncClient) -> None:
    """Every route but the sign-in, the static files and the health checks sends a stranger to sign in."""
    open_paths = {"/login", "/healthz", "/readyz", "/favicon.ico"}
    app = web.app  # type: ignore[attr-defined]
    checked = 0
    for route in all_routes(app.routes):
        path, methods = getattr(route, "path", ""), getattr(route, "methods", None) or set()
        if path in open_paths or path.startswith("/static") or not methods:
            continue
        url = re.sub(r"\{[^}]+\}", "5f0c7a52-0b6e-4d43-9d5e-2f1c1f3e6a10", path)
        for method in methods - {"HEAD"}:
            resp = await web.request(method, url)
            assert resp.status_code == 303 and resp.headers["location"].startswith("/login"), (method, path)
            checked += 1
    assert checked >= 10
