"""/docs and /redoc are served from the service's own pinned assets, with a CSP that admits this
origin's scripts and the page's one inline script by its hash: they work without internet and
under a strict policy."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest


@pytest.mark.parametrize(
    ("page", "assets"), [("/docs", ["swagger-ui-bundle.js", "swagger-ui.css"]), ("/redoc", ["redoc.standalone.js"])]
)
async def test_docs_pages_load_only_local_assets_under_a_hashed_csp(
    service_client, page: str, assets: list[str]
) -> None:
    async with service_client("placement") as client:
        resp = await client.get(page)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        html = resp.text
        # Nothing from another origin: every src and href is a path on this service.
        external = [u for u in re.findall(r'(?:src|href)="([^"]+)"', html) if not u.startswith("/")]
        assert not external, external
        for asset in assets:
            assert f"/docs/static/{asset}" in html
            got = await client.get(f"/docs/static/{asset}")
            assert got.status_code == 200 and len(got.content) > 100_000, asset
        csp = resp.headers["content-security-policy"]
        script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src")).split()[1:]
        assert "'unsafe-inline'" not in script_src and "'self'" in script_src
        assert not [s for s in script_src if s.startswith("http")]
        for inline in re.findall(r"<script>(.*?)</script>", html, flags=re.S):
            digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in script_src
