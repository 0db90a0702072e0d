"""The access model, cell by cell: role × endpoint × own/other district, for all four services.

The expectations are written out here, not read from shared/web/policy.py, so that a mistake in the
policy shows up as a wrong cell. "Own" is a record of Farsta (the district in the scoped roles'
tokens), "other" one of Bromma. In the school service the Farsta placement is a protected child's,
so the teaching team for protected housing sees "own" and not "other" just like a Farsta
caseworker does.

Cells: ok (the policy let the request through: 2xx, or 409/422 from the rules behind it; writes
use bodies the rules refuse, so the matrix changes nothing), 404 (out of the caller's rows,
answered as an unknown id), 403 (the role may not), 401 (no token).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from shared.kernel.settings import Settings
from shared.local.migrate import _asyncpg_dsn
from tests.fixtures.factories import child_body, luhn_pnr, placement_body
from tests.fixtures.support import all_routes

ROLES = (
    "admin",
    "caseworker",
    "district_manager",
    "school_coordinator",
    "protected_teaching",
    "health_staff",
    "central_analyst",
    "service",
)
OWN, OTHER = "Farsta", "Bromma"
DAY0 = date(2025, 8, 1)
FUTURE = "2099-01-01"
PAST = "2000-01-01"

# How a role fares with an endpoint: (own, other).
OK = ("ok", "ok")
SCOPED = ("ok", "404")  # a record outside the caller's rows is answered as unknown
FILTERED = ("ok", "403")  # a list filtered on another district; a new record for another district
DENY = ("403", "403")


def cells(default: tuple[str, str] = DENY, **roles: tuple[str, str]) -> dict[str, tuple[str, str]]:
    return {role: roles.get(role, default) for role in ROLES}


@dataclass
class Endpoint:
    method: str
    path: str  # {id} is the own or the other record's id
    body: Any
    expect: dict[str, tuple[str, str]]
    ids: str = ""  # which seeded ids fill {id}

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


# Bodies take the seeded ids and the district of the cell: body(ids, district).
PLACEMENT = [
    Endpoint(
        "POST",
        "/v1/children",
        lambda s, d: child_body(40, district=d),
        cells(admin=OK, caseworker=FILTERED, district_manager=FILTERED),
    ),
    Endpoint(
        "POST",
        "/v1/children/lookup",
        lambda s, d: {"personnummer": s["pnr"]},
        cells(admin=OK, caseworker=SCOPED, district_manager=SCOPED),
        "child",
    ),
    Endpoint("GET", "/v1/children/{id}", None, cells(admin=OK, caseworker=SCOPED, district_manager=SCOPED), "child"),
    Endpoint("PATCH", "/v1/children/{id}", {}, cells(admin=OK, caseworker=SCOPED, district_manager=SCOPED), "child"),
    Endpoint(
        "POST",
        "/v1/placements",
        # Overlaps the child's placement: 409 once through the policy.
        lambda s, d: placement_body(s["child"], start=DAY0, district=d),
        cells(admin=OK, caseworker=SCOPED, district_manager=SCOPED),
        "child",
    ),
    Endpoint(
        "GET",
        "/v1/placements?district={district}",
        None,
        cells(admin=OK, caseworker=FILTERED, district_manager=FILTERED),
    ),
    Endpoint(
        "GET", "/v1/placements/{id}", None, cells(admin=OK, caseworker=SCOPED, district_manager=SCOPED), "placement"
    ),
    Endpoint(
        "PATCH",
        "/v1/placements/{id}",
        {"planned_end_date": PAST},
        cells(admin=OK, caseworker=SCOPED, district_manager=SCOPED),
        "placement",
    ),
    Endpoint(
        "POST",
        "/v1/placements/{id}/end",
        {"end_date": PAST, "end_reason": "moved"},
        cells(admin=OK, caseworker=SCOPED, district_manager=SCOPED),
        "placement",
    ),
    Endpoint(
        "POST",
        "/v1/placements/{id}/move",
        lambda s, d: {
            "move_date": PAST,
            "next": {k: v for k, v in placement_body("x", start=DAY0, district=d).items() if k != "child_id"},
        },
        cells(admin=OK, caseworker=SCOPED, district_manager=SCOPED),
        "placement",
    ),
    Endpoint("GET", "/v1/placements/{id}/snapshot", None, cells(admin=OK, service=OK), "placement"),
    Endpoint(
        "GET",
        "/v1/reports/placements?from=2025-01-01&to=2025-12-31&district={district}",
        None,
        cells(admin=OK, caseworker=OK, district_manager=OK, central_analyst=OK),
    ),
    Endpoint("GET", "/v1/audit", None, cells(admin=OK)),
]

SCHOOLING = dict(admin=OK, caseworker=SCOPED, district_manager=SCOPED, school_coordinator=OK, protected_teaching=SCOPED)
SCHOOL = [
    Endpoint(
        "POST",
        "/v1/school-plans",
        lambda s, d: {"placement_id": s["placement"], "drawn_up_on": FUTURE},
        cells(**SCHOOLING),
        "placement",
    ),
    Endpoint("GET", "/v1/school-plans/{id}", None, cells(**SCHOOLING), "plan"),
    Endpoint(
        "POST",
        "/v1/school-starts",
        lambda s, d: {"placement_id": s["placement"], "start_date": FUTURE, "provision": "home_school"},
        cells(**SCHOOLING),
        "placement",
    ),
    Endpoint(
        "GET",
        "/v1/school-starts?district={district}",
        None,
        cells(
            admin=OK,
            caseworker=FILTERED,
            district_manager=FILTERED,
            school_coordinator=OK,
            protected_teaching=OK,
        ),
    ),
    Endpoint("GET", "/v1/school-starts/{id}", None, cells(**SCHOOLING), "start"),
    Endpoint(
        "POST",
        "/v1/school-ends",
        # The start is ended already: 409 once through the policy.
        lambda s, d: {"placement_id": s["placement"], "end_date": PAST, "reason": "moved"},
        cells(**SCHOOLING),
        "placement",
    ),
    Endpoint("GET", "/v1/school-ends/{id}", None, cells(**SCHOOLING), "end"),
    Endpoint("GET", "/v1/placements/{id}/schooling", None, cells(**SCHOOLING), "placement"),
    Endpoint("GET", "/v1/audit", None, cells(admin=OK)),
]

HEALTH = [
    Endpoint(
        "POST",
        "/v1/examinations",
        lambda s, d: {"placement_id": s["placement"], "kind": "health", "status": "booked", "date": PAST},
        cells(admin=OK, caseworker=SCOPED, health_staff=OK),
        "placement",
    ),
    Endpoint(
        "POST",
        "/v1/examinations/{id}/outcome",
        {"status": "completed", "date": FUTURE},
        cells(admin=OK, caseworker=SCOPED, health_staff=OK),
        "exam",
    ),
    Endpoint(
        "POST",
        "/v1/examinations/{id}/rebook",
        {"date": PAST},
        cells(admin=OK, caseworker=SCOPED, health_staff=OK),
        "exam",
    ),
    Endpoint(
        "GET",
        "/v1/examinations/{id}",
        None,
        cells(admin=OK, caseworker=SCOPED, district_manager=SCOPED, health_staff=OK),
        "exam",
    ),
    Endpoint(
        "GET",
        "/v1/examinations?district={district}",
        None,
        cells(admin=OK, caseworker=FILTERED, district_manager=FILTERED, health_staff=OK),
    ),
    Endpoint("GET", "/v1/audit", None, cells(admin=OK)),
]

NOTIFY = [
    Endpoint(
        "GET", "/v1/alerts?district={district}", None, cells(admin=OK, caseworker=FILTERED, district_manager=FILTERED)
    ),
    Endpoint("GET", "/v1/alerts/{id}", None, cells(admin=OK, caseworker=SCOPED, district_manager=SCOPED), "alert"),
    Endpoint(
        "POST",
        "/v1/alerts/{id}/acknowledge",
        {},  # a pre-warning cannot be acknowledged: 409 once through the policy
        cells(admin=OK, caseworker=SCOPED, district_manager=SCOPED),
        "alert",
    ),
    Endpoint("POST", "/v1/webhooks", {"url": "ftp://nowhere", "secret": "x"}, cells(admin=OK)),
    Endpoint("GET", "/v1/webhooks", None, cells(admin=OK)),
    Endpoint("GET", "/v1/webhooks/{id}", None, cells(admin=OK), "webhook"),
    Endpoint("GET", "/v1/webhooks/{id}/deliveries", None, cells(admin=OK), "webhook"),
    Endpoint("GET", "/v1/audit", None, cells(admin=OK)),
    # Last: the admin's calls delete the seeded webhooks.
    Endpoint("DELETE", "/v1/webhooks/{id}", None, cells(admin=OK), "webhook"),
]

MATRIX = {"placement": PLACEMENT, "school": SCHOOL, "health": HEALTH, "notify": NOTIFY}


def category(status: int) -> str:
    if status in (401, 403, 404):
        return str(status)
    if 200 <= status < 300 or status in (409, 422):
        return "ok"
    return f"unexpected {status}"


async def sql(settings: Settings, service: str, statement: str, *args: Any) -> None:
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url(service)))  # type: ignore[arg-type]
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()


async def plant_placement(settings: Settings, service: str, district: str, *, protected: bool = False) -> str:
    """A placement as a consuming service's projection holds it, without going through the bus."""
    placement_id = uuid.uuid4()
    await sql(
        settings,
        service,
        "INSERT INTO placement_view (placement_id, child_id, version, district, form, start_date, school_change,"
        " child_birth_date, protected_identity) VALUES ($1, $2, 1, $3, 'familjehem', $4, true, $5, $6)",
        placement_id,
        uuid.uuid4(),
        district,
        DAY0,
        date(2013, 4, 1),
        protected,
    )
    return str(placement_id)


async def seed(service: str, admin: httpx.AsyncClient, settings: Settings, district: str, n: int) -> dict[str, str]:
    """One record of each kind in the district, made as the administrator."""

    async def created(path: str, body: dict[str, Any]) -> str:
        resp = await admin.post(path, json=body)
        assert resp.status_code == 201, resp.text
        ident: str = resp.json()["id"]
        return ident

    if service == "placement":
        body = child_body(n, district=district)
        child = await created("/v1/children", body)
        placement = await created("/v1/placements", placement_body(child, start=DAY0, district=district))
        return {"child": child, "pnr": body["personnummer"], "placement": placement}
    if service == "school":
        placement = await plant_placement(settings, "school", district, protected=district == OWN)
        plan = await created("/v1/school-plans", {"placement_id": placement, "drawn_up_on": str(DAY0)})
        start = await created(
            "/v1/school-starts", {"placement_id": placement, "start_date": str(DAY0), "school_unit_code": "12345678"}
        )
        end = await created(
            "/v1/school-ends",
            {"placement_id": placement, "end_date": str(DAY0 + timedelta(days=3)), "reason": "moved"},
        )
        return {"placement": placement, "plan": plan, "start": start, "end": end}
    if service == "health":
        placement = await plant_placement(settings, "health", district)
        exam = await created(
            "/v1/examinations", {"placement_id": placement, "kind": "dental", "status": "completed", "date": str(DAY0)}
        )
        return {"placement": placement, "exam": exam}
    alert = uuid.uuid4()
    await sql(
        settings,
        "notify",
        "INSERT INTO alert (id, rule, placement_id, child_id, district, status, clock_start, deadline, as_of,"
        " calendar_days, counted_days) VALUES ($1, 'school_gap', $2, $3, $4, 'warning', $5, $6, $5, 5, 5)",
        alert,
        uuid.uuid4(),
        uuid.uuid4(),
        district,
        DAY0,
        DAY0 + timedelta(days=7),
    )
    webhook = await created("/v1/webhooks", {"url": "https://hooks.example/obruten", "secret": "s" * 20})
    return {"alert": str(alert), "webhook": webhook}


@pytest.mark.parametrize("service", list(MATRIX))
async def test_role_endpoint_district_matrix(
    service: str, service_client: Any, settings: Settings, tokens: Any
) -> None:
    async with service_client(service) as admin:
        own = await seed(service, admin, settings, OWN, 1)
        other = await seed(service, admin, settings, OTHER, 2)
        wrong: list[str] = []
        table: list[str] = []
        for endpoint in MATRIX[service]:
            row = []
            got_401 = category(
                (
                    await admin.request(endpoint.method, _url(endpoint, own, OWN), headers={"Authorization": ""})
                ).status_code
            )
            if got_401 != "401":
                wrong.append(f"{endpoint} without a token: {got_401}, expected 401")
            for role in ROLES:
                headers = tokens.headers(role, district=OWN, subject=f"{role}-1")
                got = []
                for ids, district in ((own, OWN), (other, OTHER)):
                    body = endpoint.body(ids, district) if callable(endpoint.body) else endpoint.body
                    resp = await admin.request(
                        endpoint.method, _url(endpoint, ids, district), json=body, headers=headers
                    )
                    got.append(category(resp.status_code))
                    if got[-1] == "ok" and resp.status_code >= 500:
                        wrong.append(f"{endpoint} {role}: {resp.status_code} {resp.text}")
                expected = endpoint.expect[role]
                row.append(f"{role}={'/'.join(got)}")
                if tuple(got) != expected:
                    wrong.append(
                        f"{endpoint} as {role} (own/other): got {'/'.join(got)}, expected {'/'.join(expected)}"
                    )
            table.append(f"{endpoint}: 401 " + " ".join(row))
    print(f"\n{service} access matrix (own/other district):\n  " + "\n  ".join(table))
    assert not wrong, "\n".join(wrong)


def _url(endpoint: Endpoint, ids: dict[str, str], district: str) -> str:
    url = endpoint.path.replace("{district}", district)
    if endpoint.ids:
        url = url.replace("{id}", ids[endpoint.ids])
    return url


async def test_a_farsta_caseworker_gets_404_for_a_bromma_placement_like_for_an_unknown_id(
    service_client: Any, tokens: Any
) -> None:
    async with service_client("placement") as admin:
        child = (await admin.post("/v1/children", json=child_body(3, district="Bromma"))).json()["id"]
        resp = await admin.post("/v1/placements", json=placement_body(child, start=DAY0, district="Bromma"))
        bromma = resp.json()["id"]
        farsta = tokens.headers("caseworker", district="Farsta", subject="cw-farsta")
        hidden = await admin.get(f"/v1/placements/{bromma}", headers=farsta)
        unknown = await admin.get(f"/v1/placements/{uuid.uuid4()}", headers=farsta)
        assert hidden.status_code == unknown.status_code == 404
        # instance and request_id name the request, not the record.
        strip = lambda r: {k: v for k, v in r.json().items() if k not in ("instance", "request_id")}  # noqa: E731
        assert strip(hidden) == strip(unknown), "a hidden record must look exactly like a missing one"
        # Nor do the lists or the child show it.
        listed = (await admin.get("/v1/placements", headers=farsta)).json()
        assert listed["total"] == 0 and listed["items"] == []
        assert (await admin.get(f"/v1/children/{child}", headers=farsta)).status_code == 404
        bromma_cw = tokens.headers("caseworker", district="Bromma", subject="cw-bromma")
        assert (await admin.get(f"/v1/placements/{bromma}", headers=bromma_cw)).status_code == 200
        # A scoped role without a district in its token sees nothing.
        no_district = tokens.headers("caseworker", subject="cw-nowhere")
        assert (await admin.get("/v1/placements", headers=no_district)).status_code == 403


async def test_a_central_analyst_gets_403_for_every_row_level_endpoint(service_client: Any, tokens: Any) -> None:
    analyst = tokens.headers("central_analyst", subject="analyst")
    for service, endpoints in MATRIX.items():
        async with service_client(service) as client:
            spec = (await client.get("/openapi.json")).json()
            for path, item in spec["paths"].items():
                if not path.startswith("/v1/") or path.startswith("/v1/reports/"):
                    continue
                for method in item:
                    url = path.replace("{", "").replace("}", "")
                    url = "/".join(str(uuid.uuid4()) if p.endswith("_id") else p for p in url.split("/"))
                    resp = await client.request(method.upper(), url, json={}, headers=analyst)
                    assert resp.status_code == 403, f"{service} {method.upper()} {path}: {resp.status_code}"
        assert endpoints
    async with service_client("placement") as client:
        # Two children in Skärholmen's hvb cell, five in Farsta's familjehem cell.
        for n, (district, form) in enumerate([("Skärholmen", "hvb")] * 2 + [("Farsta", "familjehem")] * 5):
            child = (await client.post("/v1/children", json=child_body(300 + n, district=district))).json()["id"]
            body = placement_body(child, start=date(2025, 3, 1), district=district, form=form)
            assert (await client.post("/v1/placements", json=body)).status_code == 201
        report = await client.get(
            "/v1/reports/placements", params={"from": "2025-01-01", "to": "2025-12-31"}, headers=analyst
        )
        assert report.status_code == 200, report.text
        rows = {r["district"]: r for r in report.json()["tables"][0]["rows"]}
        assert rows["Skärholmen"]["hvb"] == "*" and rows["Farsta"]["familjehem"] == 5
        # Totals count shown cells only: the hidden two cannot be recovered from them.
        assert rows["Skärholmen"]["total"] == 0 and rows["total"]["hvb"] == 0 and rows["total"]["total"] == 5


async def test_every_route_of_every_service_has_an_access_rule() -> None:
    import importlib

    from shared.local.runner import available_services
    from shared.web.policy import rule_for

    for service in available_services():
        app = importlib.import_module(f"services.{service}.app").create_app(Settings())
        checked = 0
        for route in all_routes(app.routes):
            path = getattr(route, "path", "")
            if not path.startswith("/v1/"):
                continue
            for method in getattr(route, "methods", set()) - {"HEAD"}:
                assert rule_for(method, path) is not None, f"{service} {method} {path} has no access rule"
                checked += 1
        # A front end has no /v1 API; every API service has several routes, and a walk that
        # finds none has looked in the wrong place (included routers hide their routes).
        assert checked >= 3 or not any(p.startswith("/v1/") for p in app.openapi()["paths"]), service


async def test_a_personnummer_in_a_lookup_never_reaches_the_url_or_the_audit(service_client: Any) -> None:
    pnr = luhn_pnr(date(2012, 5, 6), 321)
    async with service_client("placement") as client:
        await client.post("/v1/children", json={"personnummer": pnr, "district": "Farsta"})
        assert (await client.post("/v1/children/lookup", json={"personnummer": pnr})).status_code == 200
        trail = (await client.get("/v1/audit", headers={"Accept": "text/csv"})).text
    assert pnr.replace("-", "") not in trail.replace("-", "")
    assert "/v1/children/lookup" in trail


async def test_the_row_level_school_start_list_is_the_callers_own_district_only(
    service_client: Any, tokens: Any
) -> None:
    params = {"from": "2025-01-01", "to": "2025-12-31"}
    url = "/v1/reports/school-starts/rows"
    async with service_client("school") as client:
        farsta = tokens.headers("caseworker", district="Farsta", subject="cw-farsta")
        manager = tokens.headers("district_manager", district="Farsta", subject="dm-farsta")
        for headers in (farsta, manager):
            assert (await client.get(url, params={**params, "district": "Farsta"}, headers=headers)).status_code == 200
            other = await client.get(url, params={**params, "district": "Bromma"}, headers=headers)
            assert other.status_code == 403 and other.json()["field"] == "query.district", other.text
        analyst = tokens.headers("central_analyst", subject="analyst")
        assert (await client.get(url, params={**params, "district": "Farsta"}, headers=analyst)).status_code == 403
        coordinator = tokens.headers("school_coordinator", subject="coordinator")
        assert (await client.get(url, params={**params, "district": "Farsta"}, headers=coordinator)).status_code == 403
        admin = tokens.headers("admin", subject="admin")
        assert (await client.get(url, params={**params, "district": "Bromma"}, headers=admin)).status_code == 200
        # The aggregate stays open to every reporting role, whatever district it names.
        agg = await client.get("/v1/reports/school-starts", params={**params, "district": "Bromma"}, headers=farsta)
        assert agg.status_code == 200, agg.text
