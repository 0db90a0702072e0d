"""What the web service's tests share: a real OIDC provider, Debian's Chromium driven by
Playwright, axe-core, screenshots under var/screenshots/, and the four services live."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import oidc_provider_mock
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CLIENT_ID = "obruten"


class Provider:
    """oidc-provider-mock on a free port: a real authorization server (Authlib) with a login
    form where the subject is typed, and users' claims set over its HTTP API."""

    def __init__(self, port: int) -> None:
        self.issuer = f"http://localhost:{port}"

    def set_user(self, sub: str, **claims: Any) -> None:
        resp = httpx.put(f"{self.issuer}/users/{quote(sub, safe='')}", json=claims, timeout=10)
        assert resp.status_code == 204, resp.text

    def id_token(self, sub: str, **claims: Any) -> str:
        """An ID token for `sub` got through the code flow without a browser (for seeding data
        and the services' own token): what the provider signs is what the services verify."""
        self.set_user(sub, **claims)
        redirect = "http://127.0.0.1/cb"
        with httpx.Client(base_url=self.issuer, timeout=10) as client:
            params = {"client_id": CLIENT_ID, "response_type": "code", "redirect_uri": redirect, "scope": "openid"}
            resp = client.post("/oauth2/authorize", params=params, data={"sub": sub})
            assert resp.status_code == 302, resp.text
            code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
            token = client.post(
                "/oauth2/token",
                data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect},
                auth=(CLIENT_ID, "secret"),
            )
            assert token.status_code == 200, token.text
            return str(token.json()["id_token"])

    def jwt_settings(self) -> dict[str, Any]:
        """How the services verify the provider's tokens."""
        return {
            "jwt_jwks_url": f"{self.issuer}/jwks",
            "jwt_issuer": self.issuer,
            "jwt_audience": CLIENT_ID,
            "jwt_public_key_file": None,
        }


@contextlib.contextmanager
def oidc_provider() -> Iterator[Provider]:
    with oidc_provider_mock.run_server_in_thread(port=0) as server:
        yield Provider(server.server_port)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


_axe = Axe()


async def check_page(page: Page, name: str) -> None:
    """A screenshot under var/screenshots/, and no axe-core violation (WCAG 2.1 AA and best practice)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    results = await _axe.run(page)
    assert results.violations_count == 0, f"{name}: {results.generate_report()}"


async def assert_no_personal_data(page: Page, *numbers: str) -> None:
    """Neither the URL nor the title holds a personnummer, in any of the ways it is written."""
    title = await page.title()
    for pnr in numbers:
        d = re.sub(r"\D", "", pnr)
        for form in (d, d[2:], f"{d[:8]}-{d[8:]}", f"{d[2:8]}-{d[8:]}"):
            assert form not in page.url, page.url
            assert form not in title, title


async def live_suite(
    live_service: Callable[..., contextlib.AbstractAsyncContextManager[str]],
    stack: contextlib.AsyncExitStack,
    override: dict[str, Any],
) -> dict[str, str]:
    """The four services under uvicorn, each told where the others are."""
    urls: dict[str, str] = {}
    urls["placement"] = await stack.enter_async_context(live_service("placement", settings_override=override))
    common = {**override, "placement_url": urls["placement"]}
    for name in ("school", "health", "notify"):
        urls[name] = await stack.enter_async_context(live_service(name, settings_override=common))
    return urls


def web_override(urls: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {f"{name}_url": url for name, url in urls.items()} | {"web_plain_http": True} | extra
