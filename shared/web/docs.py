"""Swagger UI and ReDoc served by the service itself, from the pinned `fastapi-offline` wheel
(which ships swagger-ui-bundle.js, swagger-ui.css and redoc.standalone.js): /docs works on a city
network without internet, and under a Content-Security-Policy that admits only this origin and the
one inline script, by its hash."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSET_PATH = "/docs/static"


def _with_csp(html: HTMLResponse, *, workers: bool = False) -> HTMLResponse:
    body = bytes(html.body).decode()
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in re.findall(r"<script>(.*?)</script>", body, flags=re.S)
    )
    # Styles: both UIs set inline style attributes (ReDoc injects <style> elements), which CSP
    # cannot hash; scripts, the dangerous part, are this origin's and the hashed inline one only.
    policy = (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'"
    )
    if workers:
        policy += "; worker-src blob:"
    headers = {"Content-Security-Policy": policy}
    return HTMLResponse(body, headers=headers)


def install_docs(app: FastAPI) -> None:
    """Call on an app created with docs_url=None and redoc_url=None."""
    app.mount(ASSET_PATH, StaticFiles(directory=ASSETS), name="docs-static")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _with_csp(
            get_swagger_ui_html(
                openapi_url="/openapi.json",
                title=f"{title} - Swagger UI",
                swagger_js_url=f"{ASSET_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSET_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{ASSET_PATH}/favicon.png",
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _with_csp(
            get_redoc_html(
                openapi_url="/openapi.json",
                title=f"{title} - ReDoc",
                redoc_js_url=f"{ASSET_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{ASSET_PATH}/favicon.png",
                with_google_fonts=False,
            ),
            workers=True,
        )
