"""A hostile or careless caller (issue 12, the low findings): control characters, huge offsets,
calendar ends, odd claims in a validly signed token, a NUL in the path, and a rate limit that a
re-spelt header cannot reset. Every answer is a 4xx problem, never a 5xx."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import asyncpg
import jwt
import pytest

from shared.kernel.settings import Settings
from shared.local.migrate import _asyncpg_dsn
from tests.fixtures.factories import child_body

HUGE = str(2**63 + 1)


def signed(tokens: Any, **claims: Any) -> dict[str, str]:
    now = int(time.time())
    base = {"iss": tokens.settings.jwt_issuer, "aud": tokens.settings.jwt_audience, "iat": now, "exp": now + 600}
    return {"Authorization": "Bearer " + jwt.encode({**base, **claims}, tokens.key, algorithm="ES256")}


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "u1", "roles": None},
        {"sub": "u1", "roles": 7},
        {"sub": "u1", "roles": [["admin"]]},
        {"sub": "u1", "roles": [{"admin": True}]},
        {"sub": "u1", "roles": ["caseworker"], "district": 12},
        {"sub": "u\x001", "roles": ["admin"]},
        {"sub": "", "roles": ["admin"]},
    ],
)
async def test_malformed_claims_in_a_validly_signed_token_are_401(
    service_client: Any, tokens: Any, claims: Any
) -> None:
    async with service_client("placement") as client:
        resp = await client.get("/v1/placements", headers=signed(tokens, **claims))
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


async def test_a_nul_in_the_path_is_404_and_audited(service_client: Any, settings: Settings) -> None:
    async with service_client("placement") as client:
        resp = await client.get("/v1/placements/%00")
        assert resp.status_code == 404, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        control = await client.get("/v1/placements/%01abc")
        assert control.status_code == 404
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("placement")))  # type: ignore[arg-type]
    try:
        rows = await conn.fetch("SELECT resource_id, status, route FROM audit ORDER BY id")
    finally:
        await conn.close()
    assert [(r["resource_id"], r["status"]) for r in rows] == [("\\x00", 404), ("\\x01abc", 404)]
    assert {r["route"] for r in rows} == {"/v1/placements/{placement_id}"}


async def test_control_characters_in_any_free_text_are_422(
    service_client: Any, live_service: Any, settings: Settings
) -> None:
    async with service_client("placement") as placement:
        audit = await placement.get("/v1/audit", params={"subject": "a\x00b"})
        assert audit.status_code == 422 and audit.json()["field"] == "query.subject", audit.text
        for value in ("x\x00", "x\x1f", "x\x85", "\ud800"):
            # json.dumps escapes a lone surrogate as \\ud800, as a hostile client would send it.
            body = json.dumps({**child_body(1), "district": value})
            resp = await placement.post("/v1/children", content=body, headers={"content-type": "application/json"})
            assert resp.status_code == 422 and resp.json()["field"] == "body.district", (value, resp.text)
    async with service_client("school") as school:
        plan = {"placement_id": str(uuid.uuid4()), "drawn_up_on": "2025-08-01", "responsible": "Rektor\x00"}
        resp = await school.post("/v1/school-plans", json=plan)
        assert resp.status_code == 422 and resp.json()["field"] == "body.responsible", resp.text
    async with service_client("notify") as notify:
        ack = await notify.post(f"/v1/alerts/{uuid.uuid4()}/acknowledge", json={"note": "on it\x00"})
        assert ack.status_code == 422 and ack.json()["field"] == "body.note", ack.text


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("school", "/v1/school-starts"),
        ("notify", "/v1/alerts"),
        ("notify", "/v1/webhooks/{id}/deliveries"),
        ("placement", "/v1/placements"),
        ("health", "/v1/examinations"),
        ("placement", "/v1/audit"),
    ],
)
async def test_an_offset_beyond_any_integer_is_422(service_client: Any, service: str, path: str) -> None:
    async with service_client(service) as client:
        resp = await client.get(path.format(id=uuid.uuid4()), params={"offset": HUGE})
    assert resp.status_code == 422 and resp.json()["field"] == "query.offset", resp.text


@pytest.mark.parametrize(
    "params",
    [
        {"from": "0001-01-01T00:00:00+14:00"},
        {"to": "9999-12-31T23:59:59-12:00"},
        {"from": "0001-01-01T00:00:00", "to": "9999-12-31T23:59:59.999999"},
    ],
)
async def test_audit_timestamps_at_the_ends_of_the_calendar_are_422(service_client: Any, params: Any) -> None:
    async with service_client("placement") as client:
        resp = await client.get("/v1/audit", params=params)
    assert resp.status_code == 422, resp.text
    fine = {"from": "2025-01-01T00:00:00", "to": "2025-12-31T23:59:59+01:00"}
    async with service_client("placement") as client:
        assert (await client.get("/v1/audit", params=fine)).status_code == 200


async def test_the_write_limit_follows_the_verified_subject_and_says_when_to_come_back(
    service_client: Any, tokens: Any
) -> None:
    token = tokens("admin", subject="integration-1")
    spellings = [f"Bearer {token}", f"bearer {token}", f"Bearer  {token}", f"BEARER {token} "]
    async with service_client("placement", settings_override={"rate_limit_writes": "3/minute"}) as client:
        codes = []
        for n, header in enumerate(spellings):
            resp = await client.post("/v1/children", json=child_body(n), headers={"Authorization": header})
            codes.append(resp.status_code)
        assert codes[:3] == [201, 201, 201] and codes[3] == 429, codes
        retry = int(resp.headers["retry-after"])
        assert 50 <= retry <= 60, f"the one-minute window admits the next write in about a minute, not {retry}s"
        # Another token of the same subject shares the budget; another subject has its own.
        same = {"Authorization": f"Bearer {tokens('admin', subject='integration-1')}"}
        assert (await client.post("/v1/children", json=child_body(8), headers=same)).status_code == 429
        other = tokens.headers("admin", subject="integration-2")
        assert (await client.post("/v1/children", json=child_body(9), headers=other)).status_code == 201
