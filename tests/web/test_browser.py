"""The web service in a real browser: Debian's Chromium through Playwright, sign-in through a
real OpenID Connect provider, the four services live on the bus and a real PostgreSQL.

A Farsta caseworker sees the alert of a child placed ten days ago without school, records the
school start on the child's page by keyboard alone, and sees the alert leave the inbox within
5 seconds; a Bromma caseworker never sees that child; the central analyst sees figures only.
axe-core finds no violation on any page; every page's screenshot lands in var/screenshots/.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.support import eventually
from tests.web.support import (
    assert_no_personal_data,
    check_page,
    chromium,
    live_suite,
    oidc_provider,
    web_override,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

FARSTA = "caseworker-farsta@stad.example"
BROMMA = "caseworker-bromma@stad.example"
ANALYST = "analyst@stad.example"


class Desk:
    """The running suite: the services' URLs, the web's URL, the provider, an admin token."""

    def __init__(self, urls: dict[str, str], web: str, provider: Any, admin: str) -> None:
        self.urls, self.web, self.provider = urls, web, provider
        self.headers = {"Authorization": f"Bearer {admin}"}

    async def api(self, method: str, service: str, path: str, **kw: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.urls[service], headers=self.headers, timeout=10) as c:
            return await c.request(method, path, **kw)

    async def place(
        self, n: int, district: str, start: Any, caseworker: str | None = None, form: str = "familjehem"
    ) -> tuple[dict, dict]:
        child = await self.api("POST", "placement", "/v1/children", json=child_body(n, district=district))
        assert child.status_code == 201, child.text
        body = placement_body(child.json()["id"], start=start, district=district, caseworker=caseworker, form=form)
        placement = await self.api("POST", "placement", "/v1/placements", json=body)
        assert placement.status_code == 201, placement.text
        return child.json(), placement.json()

    async def history(self, today: Any) -> None:
        """Earlier months' placements with their school starts, for the follow-up figures."""
        n = 100
        for months_back, waits in ((3, (2, 4, 6, 9)), (2, (1, 3, 8, 12)), (1, (2, 5, 7, 15))):
            first = (today.replace(day=1) - timedelta(days=28 * months_back)).replace(day=3)
            for i, wait in enumerate(waits):
                n += 1
                form = ("jourhem", "familjehem", "hvb", "jourhem")[i]
                _, placement = await self.place(n, "Farsta", first + timedelta(days=i), form=form)
                start = {"placement_id": placement["id"], "start_date": (first + timedelta(days=i + wait)).isoformat(),
                         "provision": "home_school"}  # fmt: skip
                resp = await self.api("POST", "school", "/v1/school-starts", json=start)
                assert resp.status_code == 201, resp.text

    async def open_alert(self, placement_id: str, rule: str = "school_gap") -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            resp = await self.api("GET", "notify", "/v1/alerts", params={"placement_id": placement_id, "rule": rule})
            items = [a for a in resp.json()["items"] if a["status"] == "open"]
            return items[0] if items else None

        return await eventually(found, timeout=30)


@pytest.fixture
async def desk(settings, live_service, clock) -> AsyncIterator[Desk]:
    with oidc_provider() as provider:
        service_token = provider.id_token("service:obruten", roles=["service"])
        override = {
            **provider.jwt_settings(),
            "service_token": service_token,
            "notify_tick_interval_seconds": 0.3,
        }
        async with contextlib.AsyncExitStack() as stack:
            urls = await live_suite(live_service, stack, override)
            web = await stack.enter_async_context(
                live_service(
                    "web",
                    settings_override=web_override(
                        urls,
                        **override,
                        web_oidc_issuer=provider.issuer,
                        web_oidc_client_id="obruten",
                        web_oidc_client_secret="test-secret",
                        web_oidc_api_token="id_token",
                        web_refresh_seconds=1.0,
                    ),
                )
            )
            admin = provider.id_token("admin@stad.example", roles=["admin"])
            yield Desk(urls, web, provider, admin)


async def sign_in(
    browser: Browser, desk: Desk, sub: str, *, check: bool = False, start: str = "/", **claims: Any
) -> Page:
    desk.provider.set_user(sub, email=sub, **claims)
    page = await (await browser.new_context(viewport={"width": 1280, "height": 900})).new_page()
    await page.goto(f"{desk.web}{start}")
    await expect(page).to_have_url(re.compile(re.escape(f"{desk.web}/login")))
    if check:
        await check_page(page, "login")
    await page.get_by_role("link", name="Logga in").click()
    # The provider's own login form: type the subject, authorize.
    await page.get_by_placeholder("sub").fill(sub)
    await page.get_by_role("button", name="Authorize").click()
    await page.wait_for_url(f"{desk.web}/**")
    return page


async def test_caseworker_records_a_school_start_and_the_alert_leaves_the_inbox(desk: Desk, clock) -> None:
    today = clock.today()
    child, placement = await desk.place(1, "Farsta", today - timedelta(days=10), caseworker=FARSTA)
    bromma_child, _ = await desk.place(2, "Bromma", today - timedelta(days=9))
    await desk.history(today)
    alert = await desk.open_alert(placement["id"])

    async with chromium() as browser:
        page = await sign_in(browser, desk, FARSTA, check=True, roles=["caseworker"], district="Farsta")
        row = page.locator(f'tr[data-alert="{alert["id"]}"]')
        await expect(row).to_be_visible()
        await expect(row).to_contain_text("Familjehem")
        await expect(row).to_contain_text("10")
        await expect(row).to_contain_text(alert["deadline"])
        await expect(page.locator(f'tr[data-child="{bromma_child["id"]}"]')).to_have_count(0)
        await check_page(page, "inbox")
        await assert_no_personal_data(page, child["personnummer"])

        # A new alert appears by itself, without reloading the page.
        _, later = await desk.place(3, "Farsta", today - timedelta(days=12))
        later_alert = await desk.open_alert(later["id"])
        seen = time.monotonic()
        await expect(page.locator(f'tr[data-alert="{later_alert["id"]}"]')).to_be_visible(timeout=5000)
        assert time.monotonic() - seen < 5

        await row.get_by_role("link").click()
        await page.wait_for_url(f"{desk.web}/children/{child['id']}")
        await check_page(page, "child")
        await assert_no_personal_data(page, child["personnummer"])

        # A refused input: the API's own reason stands next to the field it names.
        form = page.locator(f'form[action$="/school_start"]:has(input[value="{placement["id"]}"])')
        await form.get_by_label("Skolenhetskod").fill("123")
        await form.get_by_role("button", name="Spara").click()
        refused = await desk.api(
            "POST",
            "school",
            "/v1/school-starts",
            json={"placement_id": placement["id"], "start_date": today.isoformat(), "school_unit_code": "123"},
        )
        reason = next(e["reason"] for e in refused.json()["errors"] if e["field"] == "body.school_unit_code")
        error = page.locator(f"#start-{placement['id']}-school_unit_code-error")
        await expect(error).to_have_text(reason)
        await expect(page.locator(f"#start-{placement['id']}-school_unit_code")).to_have_attribute(
            "aria-invalid", "true"
        )
        await check_page(page, "child-refused")

        # The school start by keyboard alone: Tab to the field, type, Tab on, Enter.
        await record_start_by_keyboard(page, placement["id"], today.isoformat())
        recorded = time.monotonic()
        await expect(page.get_by_role("status")).to_contain_text("Skolstarten är registrerad")
        await page.goto(f"{desk.web}/")
        await expect(page.locator(f'tr[data-alert="{alert["id"]}"]')).to_have_count(0, timeout=5000)
        left = time.monotonic() - recorded
        resolved = await desk.api("GET", "notify", f"/v1/alerts/{alert['id']}")
        assert resolved.json()["status"] == "resolved"
        assert left < 5, f"the alert left the inbox {left:.1f} s after the school start was recorded"

        for path, name in (("/search", "search"), ("/followup", "followup"), ("/settings", "settings")):
            await page.goto(f"{desk.web}{path}")
            await expect(page.locator(".part")).to_have_count(0)  # every section has come in
            await check_page(page, name)
        await expect(page.get_by_text(FARSTA)).to_be_visible()  # the address the ID token carried
        # Signing in handed that address to notify (PUT /v1/people/{subject}, the person's own token).
        person = await desk.api("GET", "notify", f"/v1/people/{FARSTA}")
        assert person.status_code == 200 and person.json()["email"] == FARSTA, person.text
        await page.get_by_label("En sammanfattning per dag").check()
        await page.get_by_role("button", name="Spara").click()
        await expect(page.get_by_role("status")).to_have_text("Sparat.")
        person = await desk.api("GET", "notify", f"/v1/people/{FARSTA}")
        assert person.json()["delivery"] == "digest", person.text

        # Finding a child by personnummer: a POST, the number in no URL.
        await page.goto(f"{desk.web}/search")
        lookup = page.locator('form[action="/search/lookup"]')
        await lookup.get_by_label("Personnummer").fill(child["personnummer"])
        await lookup.get_by_role("button", name="Sök").click()
        await expect(page.get_by_role("link", name="Öppna barnets sida")).to_be_visible()
        await assert_no_personal_data(page, child["personnummer"])
        await check_page(page, "search-found")
        await lookup.get_by_label("Personnummer").fill(bromma_child["personnummer"])
        await lookup.get_by_role("button", name="Sök").click()
        not_found = "Inget barn med det numret i din stadsdel."
        await expect(page.locator("#lookup-personnummer-error")).to_have_text(not_found)

        # Register a child, then start, move and end its placement from the same page.
        newcomer = child_body(70, district="Farsta")
        register = page.locator('form[action="/search/register"]')
        await register.get_by_label("Personnummer").fill(newcomer["personnummer"])
        await register.get_by_role("button", name="Registrera").click()
        start = page.locator('form[action="/search/start"]')
        await start.get_by_label("Placeringsform").select_option("jourhem")
        await start.get_by_label("Startdatum").fill((today - timedelta(days=10)).isoformat())
        await start.get_by_role("button", name="Starta placering").click()
        await expect(page.get_by_role("status")).to_contain_text("Placeringen är registrerad")
        await assert_no_personal_data(page, newcomer["personnummer"])
        for action, fill, button, done in (
            ("move", ("Flyttdatum", (today - timedelta(days=5)).isoformat()), "Flytta", "Flytten är registrerad"),
            ("end", ("Slutdatum", today.isoformat()), "Avsluta", "Placeringen är avslutad"),
        ):
            await page.goto(f"{desk.web}/search")
            await lookup.get_by_label("Personnummer").fill(newcomer["personnummer"])
            await lookup.get_by_role("button", name="Sök").click()
            form = page.locator(f'form[action="/search/{action}"]')
            await form.get_by_label(fill[0]).fill(fill[1])
            await form.get_by_role("button", name=button).click()
            await expect(page.get_by_role("status")).to_contain_text(done)
        await expect(page.get_by_text("Flytt till annan placering")).to_be_visible()  # the first one's end reason
        await page.goto(f"{desk.web}/children/{bromma_child['id']}")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Hittades inte")
        await check_page(page, "not-found")

        bromma = await sign_in(browser, desk, BROMMA, roles=["caseworker"], district="Bromma")
        await expect(bromma.locator("#alerts-count")).to_be_visible()
        await expect(bromma.locator(f'tr[data-child="{child["id"]}"]')).to_have_count(0)
        assert child["personnummer"].replace("-", "") not in (await bromma.content())
        await bromma.goto(f"{desk.web}/children/{child['id']}")
        await expect(bromma.get_by_role("heading", level=1)).to_have_text("Hittades inte")
        await check_page(bromma, "bromma-inbox-child")

        # A protected child's whereabouts: on the page only where the API gives them (to the
        # caseworker named on the placement), never to another caseworker of the district.
        for n, named, shown in ((60, FARSTA, True), (61, "someone-else", False)):
            body = child_body(n, district="Farsta", protected=True)
            kid = (await desk.api("POST", "placement", "/v1/children", json=body)).json()
            where = f"Skyddat hem {n}, Exempelkommun"
            placed = placement_body(kid["id"], start=today, caseworker=named, location=where)
            assert (await desk.api("POST", "placement", "/v1/placements", json=placed)).status_code == 201
            await page.goto(f"{desk.web}/children/{kid['id']}")
            await expect(page.get_by_role("heading", level=1)).to_have_text("Barnet")
            assert (where in await page.content()) is shown, (named, shown)

        # A mail's link to an alert: sign in, then the alert on its child's page.
        mailed = await sign_in(
            browser, desk, FARSTA, start=f"/alerts/{later_alert['id']}", roles=["caseworker"], district="Farsta"
        )
        await expect(mailed).to_have_url(f"{desk.web}/children/{later['child_id']}#alert-{later_alert['id']}")
        await expect(mailed.locator(f"#alert-{later_alert['id']}")).to_be_visible()

        analyst = await sign_in(browser, desk, ANALYST, roles=["central_analyst"])
        await expect(analyst).to_have_url(f"{desk.web}/followup")
        await expect(analyst.get_by_text("Hela staden, endast sammanställda siffror")).to_be_visible()
        await expect(analyst.locator(".part")).to_have_count(0)
        assert child["personnummer"].replace("-", "")[2:] not in (await analyst.content())
        await check_page(analyst, "followup-city")
        for path in ("/", f"/children/{child['id']}", "/search"):
            await analyst.goto(f"{desk.web}{path}")
            await expect(analyst.get_by_role("heading", level=1)).to_have_text("Ingen behörighet")
        await check_page(analyst, "forbidden")


async def record_start_by_keyboard(page: Page, placement_id: str, day: str) -> None:
    target = f"start-{placement_id}-start_date"
    await page.locator("body").focus()
    for _ in range(300):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement && document.activeElement.id") == target:
            break
    else:
        raise AssertionError("Tab never reached the school start date")
    await page.keyboard.press("Control+A")
    await page.keyboard.type(day)
    await page.keyboard.press("Tab")  # the school unit code, refused before: cleared, home school instead
    await page.keyboard.press("Control+A")
    await page.keyboard.press("Delete")
    await page.keyboard.press("Tab")  # the other-teaching choice
    await page.keyboard.press("ArrowDown")  # home school
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent.trim()") == "Spara"
    await page.keyboard.press("Enter")
    await page.wait_for_load_state()


async def test_development_sign_in_in_the_browser(settings, live_service) -> None:
    """No provider configured: the development form, marked as such on every page."""
    async with live_service("web", settings_override={"web_plain_http": True}) as web, chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{web}/settings")
        await expect(page).to_have_url(re.compile(re.escape(f"{web}/login?next=")))
        await check_page(page, "dev-login")
        await page.get_by_label("Roll").select_option("caseworker")
        await page.get_by_label("Stadsdel").select_option("Farsta")
        await page.get_by_role("button", name="Logga in").click()
        await page.goto(f"{web}/settings")
        await expect(page.get_by_text("Utvecklingsinloggning")).to_be_visible()
        await check_page(page, "dev-settings")
