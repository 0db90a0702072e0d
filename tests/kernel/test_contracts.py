"""Contracts every service shares: the AsyncAPI document, the auth seam, the error format."""

from __future__ import annotations

import importlib
import json
import re
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from shared.contracts.envelope import REGISTRY
from shared.contracts.topics import TOPIC_PLACEMENT
from shared.kernel.settings import Settings
from shared.local.asyncapi import build_document, load_all_event_types
from shared.local.runner import available_services
from shared.web.registry import service as registered
from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.support import TopicTail

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "asyncapi.json"


def committed_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DOC_PATH.read_text())
    return doc


def validate_event(doc: dict[str, Any], event: dict[str, Any]) -> None:
    """Validate a CloudEvent against the message the document declares for its type."""
    messages = [m for m in doc["components"]["messages"].values() if m["name"] == event["type"]]
    assert messages, f"{event['type']} is emitted but the AsyncAPI document does not describe it"
    schema = {**messages[0]["payload"], "components": doc["components"]}
    jsonschema.validate(event, schema)


def test_committed_asyncapi_document_is_current() -> None:
    assert committed_doc() == json.loads(json.dumps(build_document())), (
        "docs/asyncapi.json is stale: run `make asyncapi` and commit it"
    )


def test_every_declared_event_type_is_in_the_document() -> None:
    load_all_event_types()
    doc = committed_doc()
    described = {m["name"] for m in doc["components"]["messages"].values()}
    assert set(REGISTRY) == described
    for etype in REGISTRY.values():
        channel = doc["channels"][etype.topic]
        assert any(
            ref["$ref"].endswith(etype.type.removeprefix("obruten.").replace(".", "_"))
            for ref in channel["messages"].values()
        )


async def test_emitted_placement_events_match_the_document(service_client, settings: Settings) -> None:
    doc = committed_doc()
    async with TopicTail(settings.kafka_servers(), settings.topic(TOPIC_PLACEMENT)) as tail:
        async with service_client("placement") as client:
            child = (await client.post("/v1/children", json=child_body(1))).json()["id"]
            p = (await client.post("/v1/placements", json=placement_body(child, start=date(2025, 8, 1)))).json()
            await client.patch(f"/v1/placements/{p['id']}", json={"planned_end_date": "2026-01-01"})
            await client.post(f"/v1/placements/{p['id']}/end", json={"end_date": "2025-08-20", "end_reason": "other"})
            await tail.collect(3)
    events = tail.events()
    assert [e["type"] for e in events] == [
        "obruten.placement.started",
        "obruten.placement.changed",
        "obruten.placement.ended",
    ]
    for event in events:
        validate_event(doc, event)
    with pytest.raises(jsonschema.ValidationError):
        validate_event(doc, {**events[0], "data": {**events[0]["data"], "personnummer": "201503122383"}})


# Front ends (services/web) have pages behind a sign-in session, no bearer API: tests/web/test_web.py.
@pytest.mark.parametrize("service", [s for s in available_services() if not registered(s).front_end])
async def test_no_api_route_bypasses_the_auth_seam(service: str) -> None:
    """Every operation in the service's OpenAPI answers 401 problem+json without a token."""
    app = importlib.import_module(f"services.{service}.app").create_app(Settings())
    spec = app.openapi()
    operations = [
        (m.upper(), p)
        for p, item in spec["paths"].items()
        for m in item
        if m in {"get", "post", "patch", "put", "delete"}
    ]
    assert operations
    open_paths = {p for _, p in operations if not p.startswith("/v1/")}
    # The SS 12000 push target is open by design: a source holds no Obruten token, and a notice
    # carries no data; it only wakes the intake's loop early (services/school/ss12000/push.py).
    assert open_paths <= {"/healthz", "/readyz", "/healthz/details", "/ss12000/push/{source}"}, open_paths
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        for method, path in operations:
            if not path.startswith("/v1/"):
                continue
            url = re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", path)
            resp = await client.request(method, url, json={})
            assert resp.status_code == 401, f"{service} {method} {path} answered {resp.status_code} without a token"
            assert resp.headers["content-type"].startswith("application/problem+json")


async def test_metrics_count_requests_by_route_template(service_client) -> None:
    async with service_client("placement") as client:
        await client.get("/v1/placements/00000000-0000-4000-8000-000000000000")
        text = (await client.get("/metrics")).text
    assert 'route="/v1/placements/{placement_id}"' in text
    assert "00000000-0000-4000-8000-000000000000" not in text
    assert "obruten_outbox_backlog" in text and "obruten_outbox_oldest_unsent_age_seconds" in text
