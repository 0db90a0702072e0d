"""HTTP hardening shared by every service: headers, size limit, CORS closed, write rate limit."""

from __future__ import annotations

from tests.fixtures.factories import child_body


async def test_security_headers_and_closed_cors(service_client) -> None:
    async with service_client("placement") as client:
        resp = await client.get("/v1/placements", headers={"Origin": "https://evil.example"})
        assert resp.status_code == 200
        assert resp.headers["x-content-type-options"] == "nosniff"
        assert resp.headers["x-frame-options"] == "DENY"
        assert resp.headers["cache-control"] == "no-store"
        assert "access-control-allow-origin" not in resp.headers
        preflight = await client.options(
            "/v1/placements", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers


async def test_configured_origin_is_allowed(service_client) -> None:
    override = {"cors_allow_origins": ["https://caseworker.stad.example"]}
    async with service_client("placement", settings_override=override) as client:
        resp = await client.get("/v1/placements", headers={"Origin": "https://caseworker.stad.example"})
        assert resp.headers["access-control-allow-origin"] == "https://caseworker.stad.example"


async def test_oversized_body_is_413_problem(service_client) -> None:
    async with service_client("placement", settings_override={"max_request_bytes": 2048}) as client:
        resp = await client.post("/v1/children", json={**child_body(1), "padding": "x" * 5000})
        assert resp.status_code == 413
        assert resp.headers["content-type"].startswith("application/problem+json")

        # Streaming without a Content-Length is cut off too.
        async def chunks():  # type: ignore[no-untyped-def]
            for _ in range(10):
                yield b"x" * 1000

        streamed = await client.post("/v1/children", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413


async def test_writes_are_rate_limited_per_client(service_client, tokens) -> None:
    async with service_client("placement", settings_override={"rate_limit_writes": "3/minute"}) as client:
        codes = [(await client.post("/v1/children", json=child_body(n))).status_code for n in range(4)]
        assert codes == [201, 201, 201, 429]
        other = await client.post(
            "/v1/children", json=child_body(9), headers=tokens.headers("caseworker", district="Farsta", subject="other")
        )
        assert other.status_code == 201, "another client has its own budget"
        assert (await client.get("/v1/placements")).status_code == 200, "reads are not limited"
