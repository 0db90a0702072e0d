"""One trace from a write to its alert: a placement written with a given W3C traceparent, its
event on the topic, notify's spans, the alert it raises and that alert's webhook delivery all
carry the same trace id. Spans are collected by an in-memory exporter on the real pipeline
(PostgreSQL, the broker, both services)."""

from __future__ import annotations

import json
from datetime import date, timedelta

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.contracts.topics import TOPIC_ALERTS, TOPIC_PLACEMENT
from shared.kernel.tracing import trace_id_of
from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.notify import Receiver
from tests.fixtures.support import TopicTail, eventually

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
DAY0 = date(2025, 9, 1)  # the clock fixture's day


async def test_a_placement_write_its_event_notifys_evaluation_and_the_webhook_share_one_trace(
    service_client, settings, spans: InMemorySpanExporter
):
    quiet = {
        "notify_tick_interval_seconds": 3600,
        "notify_webhook_poll_interval_seconds": 0.05,
        "notify_rules": {"school_gap": {"prewarning_day": None}},
    }
    async with (
        Receiver() as receiver,
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_PLACEMENT)) as placements,
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_ALERTS)) as alerts,
        service_client("notify", settings_override=quiet) as notify,
        service_client("placement") as placement,
    ):
        hook = await notify.post("/v1/webhooks", json={"url": receiver.url, "secret": "s" * 24})
        assert hook.status_code == 201, hook.text
        child = (await placement.post("/v1/children", json=child_body(1))).json()["id"]
        # Started ten days ago with a change of school and no school start: school_gap is
        # overdue as soon as notify hears of the placement.
        body = placement_body(child, start=DAY0 - timedelta(days=10))
        resp = await placement.post("/v1/placements", json=body, headers={"traceparent": TRACEPARENT})
        assert resp.status_code == 201, resp.text
        assert (await placement.get("/healthz", headers={"traceparent": TRACEPARENT})).status_code == 200

        [event] = await placements.collect(1)
        assert trace_id_of(json.loads(event.value)["traceparent"]) == TRACE_ID

        async def delivered() -> bool:
            return bool(receiver.requests)

        await eventually(delivered, timeout=30)
        await alerts.collect(1)
    [alert_event] = [e for e in alerts.events() if e["data"]["rule"] == "school_gap"]
    assert alert_event["type"] == "obruten.alert.opened"
    assert trace_id_of(alert_event["traceparent"]) == TRACE_ID

    headers, delivery_body = receiver.requests[0]
    assert trace_id_of(headers["traceparent"]) == TRACE_ID, "the webhook POST continues the write's trace"
    assert trace_id_of(json.loads(delivery_body)["traceparent"]) == TRACE_ID

    in_trace = [s for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") == TRACE_ID]
    names = {s.name for s in in_trace}
    assert "POST /v1/placements" in names, names  # the request's server span, named by its route
    assert not any("healthz" in n for n in names), names  # probes make no span
    assert any(n.endswith("obruten.placement publish") for n in names), names  # the relay's hop
    # Notify's consumer batch (its projection and evaluation): one span for the batch, linked to
    # the event it applied (not a span per event: OpenTelemetry's messaging batch conventions).
    event_id = json.loads(event.value)["id"]
    processes = [s for s in in_trace if s.name == "notify process"]
    links = [link for s in processes for link in s.links if link.attributes["messaging.message.id"] == event_id]
    assert links, [s.links for s in processes]
    assert all(format(link.context.trace_id, "032x") == TRACE_ID for link in links)
    assert "webhook deliver" in names, names
    # SQL statements (SQLAlchemy): the placement write's. A consumer batch makes no span per
    # statement (shared/bus/inbox.py), its batch span stands for them.
    assert any(n.split(" ", 1)[0] in {"INSERT", "WITH", "SELECT", "UPDATE"} for n in names), names
    # Not a span without the trace: a write without a traceparent starts its own trace.
    other = [s for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") != TRACE_ID]
    assert any(s.name == "POST /v1/children" for s in other)
