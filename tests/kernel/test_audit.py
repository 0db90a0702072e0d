"""The audit trail: one append-only row per access, written by the seam, queried and exported by
administrators."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from shared.kernel.settings import Settings
from shared.local.migrate import _asyncpg_dsn
from shared.web.policy import v1_router
from tests.fixtures.factories import child_body, placement_body

DAY0 = date(2025, 8, 1)


async def audit_rows(settings: Settings, service: str = "placement") -> list[dict[str, Any]]:
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url(service)))  # type: ignore[arg-type]
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM audit ORDER BY id")]
    finally:
        await conn.close()


async def placed(client: Any, n: int, district: str = "Farsta", **extra: Any) -> tuple[str, str]:
    child = (await client.post("/v1/children", json=child_body(n, district=district))).json()["id"]
    resp = await client.post("/v1/placements", json=placement_body(child, start=DAY0, district=district, **extra))
    assert resp.status_code == 201, resp.text
    return child, resp.json()["id"]


async def test_every_read_of_a_placement_by_a_caseworker_leaves_one_row_naming_both(
    service_client: Any, settings: Settings, tokens: Any
) -> None:
    async with service_client("placement") as admin:
        _, pid = await placed(admin, 1)
        before = len(await audit_rows(settings))
        cw = tokens.headers("caseworker", district="Farsta", subject="cw-anna")
        for _ in range(3):
            assert (await admin.get(f"/v1/placements/{pid}", headers=cw)).status_code == 200
    rows = (await audit_rows(settings))[before:]
    assert len(rows) == 3, rows
    for row in rows:
        assert row["subject"] == "cw-anna" and row["roles"] == ["caseworker"] and row["district"] == "Farsta"
        assert (row["resource_type"], row["resource_id"], row["action"]) == ("placement", pid, "read")
        assert (row["method"], row["route"], row["status"], row["outcome"]) == (
            "GET",
            "/v1/placements/{placement_id}",
            200,
            "allowed",
        )
        assert row["at"] is not None


async def test_writes_refusals_and_denied_attempts_are_audited(
    service_client: Any, settings: Settings, tokens: Any
) -> None:
    async with service_client("placement") as admin:
        child, pid = await placed(admin, 2, district="Bromma")
        farsta = tokens.headers("caseworker", district="Farsta", subject="cw-farsta")
        assert (await admin.get(f"/v1/placements/{pid}", headers=farsta)).status_code == 404
        analyst = tokens.headers("central_analyst", subject="analyst")
        assert (await admin.get(f"/v1/placements/{pid}", headers=analyst)).status_code == 403
        bad = await admin.post(f"/v1/placements/{pid}/end", json={"end_date": "2000-01-01", "end_reason": "moved"})
        assert bad.status_code == 422
        assert (await admin.get("/v1/placements", headers={"Authorization": ""})).status_code == 401
    rows = await audit_rows(settings)
    by = [(r["subject"], r["method"], r["route"], r["resource_id"], r["status"], r["outcome"]) for r in rows]
    assert by == [
        ("test-user", "POST", "/v1/children", child, 201, "allowed"),
        ("test-user", "POST", "/v1/placements", pid, 201, "allowed"),
        ("cw-farsta", "GET", "/v1/placements/{placement_id}", pid, 404, "denied"),
        ("analyst", "GET", "/v1/placements/{placement_id}", pid, 403, "denied"),
        ("test-user", "POST", "/v1/placements/{placement_id}/end", pid, 422, "refused"),
    ], "401 answers name no one and are not audited"


async def test_audit_rows_cannot_be_updated_or_deleted(service_client: Any, settings: Settings) -> None:
    async with service_client("placement") as admin:
        await placed(admin, 3)
    for service in ("placement", "school", "health", "notify"):
        conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url(service)))  # type: ignore[arg-type]
        try:
            await conn.execute(
                "INSERT INTO audit (subject, roles, method, route, status, outcome)"
                " VALUES ('x', '{admin}', 'GET', '/v1/x', 200, 'allowed')"
            )
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute("UPDATE audit SET subject = 'someone-else'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute("DELETE FROM audit")
            assert await conn.fetchval("SELECT count(*) FROM audit WHERE subject = 'someone-else'") == 0
        finally:
            await conn.close()


async def test_administrators_query_and_export_the_trail(service_client: Any, settings: Settings, tokens: Any) -> None:
    async with service_client("placement") as admin:
        _, pid = await placed(admin, 4)
        cw = tokens.headers("caseworker", district="Farsta", subject="cw-bo")
        await admin.get(f"/v1/placements/{pid}", headers=cw)
        page = (await admin.get("/v1/audit", params={"subject": "cw-bo"})).json()
        assert page["total"] == 1 and page["items"][0]["resource_id"] == pid
        by_resource = (await admin.get("/v1/audit", params={"resource_type": "placement", "resource_id": pid})).json()
        assert [i["subject"] for i in by_resource["items"]] == ["test-user", "cw-bo"]
        first = by_resource["items"][0]["at"]
        later = (
            await admin.get("/v1/audit", params={"resource_id": pid, "from": by_resource["items"][1]["at"]})
        ).json()
        assert [i["subject"] for i in later["items"]] == ["cw-bo"]
        assert (await admin.get("/v1/audit", params={"resource_id": pid, "to": first})).json()["total"] == 1
        exported = await admin.get("/v1/audit", params={"resource_id": pid}, headers={"Accept": "text/csv"})
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(exported.text)))
        assert [r["subject"] for r in table] == ["test-user", "cw-bo"]
        assert table[1]["route"] == "/v1/placements/{placement_id}" and table[1]["status"] == "200"
        assert (await admin.get("/v1/audit", headers=cw)).status_code == 403
        # Reading the trail is itself in the trail.
        own = (await admin.get("/v1/audit", params={"resource_type": "audit"})).json()
        assert own["total"] >= 1 and own["items"][0]["subject"] == "test-user"


async def test_a_route_without_an_access_rule_is_closed_to_everyone(service_client: Any, tokens: Any) -> None:
    async with service_client("placement") as admin:
        app: FastAPI = admin.app  # type: ignore[attr-defined]
        extra = v1_router()

        @extra.get("/placements/{placement_id}/forgotten")
        async def forgotten(placement_id: uuid.UUID) -> dict[str, str]:
            return {"leak": "yes"}

        app.include_router(extra)
        resp = await admin.get(f"/v1/placements/{uuid.uuid4()}/forgotten")
        assert resp.status_code == 403, resp.text
        assert (
            await admin.get(f"/v1/placements/{uuid.uuid4()}/forgotten", headers={"Authorization": ""})
        ).status_code == 401
