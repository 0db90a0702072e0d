"""What an operations team relies on: readiness that survives a broker outage, request ids in
answers and logs, and /metrics that Prometheus can read, holding the families the alert rules
and the dashboard in deploy/monitoring/ use."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.kernel.logging import json_handler
from shared.local.embedded import EmbeddedBroker, free_port
from shared.local.runner import available_services
from shared.web.registry import service as registered
from shared.web.runtime import runtime
from tests.fixtures.factories import child_body, placement_body

DAY0 = date(2025, 9, 1)
COMMON = {
    "obruten_http_requests", "obruten_http_request_duration_seconds", "process_resident_memory_bytes",
    "process_cpu_seconds", "python_info", "python_gc_objects_collected", "obruten_broker_up",
    "obruten_database_up",
}  # fmt: skip
WITH_OUTBOX = {
    "obruten_outbox_backlog", "obruten_outbox_oldest_unsent_age_seconds", "obruten_outbox_published",
    "obruten_outbox_publish_failures",
}  # fmt: skip
WITH_CONSUMER = {
    "obruten_events_consumed", "obruten_events_rejected", "obruten_events_dead_lettered", "obruten_consumer_lag",
}  # fmt: skip
NOTIFY = {
    "obruten_alerts", "obruten_webhook_queue_depth", "obruten_webhook_attempts", "obruten_webhook_dead_letters",
    "obruten_tick_age_seconds", "obruten_tick_last_success_timestamp_seconds",
}  # fmt: skip


def expected_families(service: str) -> set[str]:
    """Every service has an outbox; all but placement consume."""
    families = COMMON | WITH_OUTBOX
    if service != "placement":
        families |= WITH_CONSUMER
    if service == "notify":
        families |= NOTIFY
    return families


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


# The web service (a front end) exports no metrics yet.
@pytest.mark.parametrize("service", [s for s in available_services() if not registered(s).front_end])
async def test_metrics_parse_with_prometheus_client_and_hold_the_families(service_client, service: str) -> None:
    async with service_client(service) as client:
        assert (await client.get("/readyz")).status_code == 200
        resp = await client.get("/metrics")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
        found = families(resp.text)
    missing = expected_families(service) - set(found)
    assert not missing, f"{service} lacks {sorted(missing)}"
    assert found["obruten_database_up"].samples[0].value == 1.0
    [ready] = [s for s in found["obruten_http_requests"].samples if s.labels.get("route") == "/readyz"]
    assert ready.labels["status"] == "200"


async def test_metrics_count_events_by_type_and_report_the_lag(service_client) -> None:
    async with service_client("placement") as placement, service_client("notify") as notify:
        child = (await placement.post("/v1/children", json=child_body(1))).json()["id"]
        resp = await placement.post("/v1/placements", json=placement_body(child, start=DAY0))
        assert resp.status_code == 201

        async def consumed() -> dict[str, Any] | None:
            found = families((await notify.get("/metrics")).text)
            samples = [s for s in found["obruten_events_consumed"].samples if s.name.endswith("_total")]
            return found if samples else None

        from tests.fixtures.support import eventually

        found = await eventually(consumed, timeout=30)
    [sample] = [s for s in found["obruten_events_consumed"].samples if s.name.endswith("_total")]
    assert sample.labels == {"group": "notify", "type": "obruten.placement.started"} and sample.value == 1
    lags = found["obruten_consumer_lag"].samples
    assert (
        lags
        and all(s.value == 0 for s in lags)
        and {s.labels["topic"] for s in lags} == {runtime(placement.app).settings.topic("obruten.placement")}
    )


@pytest.mark.slow
async def test_with_the_broker_stopped_every_service_stays_ready_and_writes_succeed(
    live_service, service_client, settings, tokens, tmp_path
) -> None:
    broker = EmbeddedBroker("127.0.0.1", free_port(), log_file=tmp_path / "broker.log")
    broker.start()
    s = {"kafka_bootstrap_servers": broker.bootstrap, "kafka_request_timeout_ms": 2000}
    try:
        async with live_service("placement", settings_override=s) as url:
            with_placement = {**s, "placement_url": url}
            async with (
                httpx.AsyncClient(base_url=url, headers=tokens.headers("admin")) as placement,
                service_client("school", settings_override=with_placement) as school,
                service_client("health", settings_override=with_placement) as health,
                service_client("notify", settings_override=s) as notify,
            ):
                broker.stop()
                clients = {"placement": placement, "school": school, "health": health, "notify": notify}
                for name, client in clients.items():
                    ready = await client.get("/readyz")
                    assert ready.status_code == 200, (name, ready.text)
                child = await placement.post("/v1/children", json=child_body(7))
                assert child.status_code == 201, child.text
                placed = await placement.post(
                    "/v1/placements", json=placement_body(child.json()["id"], start=DAY0 - timedelta(days=20))
                )
                assert placed.status_code == 201, placed.text
                pid = placed.json()["id"]
                start = {"placement_id": pid, "start_date": DAY0.isoformat(), "provision": "home_school"}
                written = {
                    "school": await school.post("/v1/school-starts", json=start),
                    "health": await health.post(
                        "/v1/examinations",
                        json={"placement_id": pid, "kind": "health", "status": "completed", "date": str(DAY0)},
                    ),
                    "notify": await notify.post(
                        "/v1/webhooks", json={"url": "https://hooks.example.se/x", "secret": "s" * 24}
                    ),
                }
                for name, resp in written.items():
                    assert resp.status_code == 201, (name, resp.text)
                for name, client in clients.items():
                    assert (await client.get("/readyz")).status_code == 200, name
                    details = (await client.get("/healthz/details")).json()
                    assert details["broker"] == "down" and details["database"] == "ok", (name, details)
    finally:
        broker.stop()


async def test_every_answer_carries_a_request_id_also_in_problems_and_log_lines(service_client, spans) -> None:
    stream = io.StringIO()
    handler = json_handler("placement", stream)
    access = logging.getLogger("obruten.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        async with service_client("placement") as client:
            mine = await client.get(
                "/v1/children/not-a-uuid?personnummer=201503122383", headers={"X-Request-ID": "abc-123"}
            )
            assert mine.headers["X-Request-ID"] == "abc-123"
            assert mine.headers["content-type"].startswith("application/problem+json")
            assert mine.json()["request_id"] == "abc-123"
            # A caller's id that could carry anything else is replaced by a fresh one.
            theirs = await client.get("/healthz", headers={"X-Request-ID": "x" * 65})
            assert len(theirs.headers["X-Request-ID"]) == 32
    finally:
        access.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [line] = [x for x in lines if x.get("status") == 422]
    assert line["route"] == "/v1/children/{child_id}" and line["method"] == "GET"
    assert line["request_id"] == "abc-123" and line["service"] == "placement" and line["level"] == "INFO"
    assert re.fullmatch(r"[0-9a-f]{32}", line["trace_id"]) and re.fullmatch(r"[0-9a-f]{16}", line["span_id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line["time"]
    assert "201503122383" not in stream.getvalue() and "not-a-uuid" not in stream.getvalue()
    assert "\x1b[" not in stream.getvalue()  # no colour codes
