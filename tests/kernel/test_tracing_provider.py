"""The process's tracer provider: without an exporter spans are not recorded, yet every span has
a valid context, so a write's traceparent still reaches its outbox row and the ids its log lines."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.kernel.tracing import context_of, make_provider, recording, trace_id_of

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture(autouse=True)
def _no_tracing_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER"):
        monkeypatch.delenv(name, raising=False)


def _spans(record: bool | None) -> tuple[InMemorySpanExporter, str | None, str | None, bool]:
    provider = make_provider("tests", record=record)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("continued", context=context_of(TRACEPARENT), kind=SpanKind.SERVER) as span:
        continued = format(span.get_span_context().trace_id, "032x")
        recording = span.is_recording()
    with tracer.start_as_current_span("new") as span:
        new = format(span.get_span_context().trace_id, "032x") if span.get_span_context().is_valid else None
    return exporter, continued, new, recording


def test_without_an_exporter_spans_are_not_recorded_but_carry_their_trace() -> None:
    exporter, continued, new, recording = _spans(None)
    assert not recording and exporter.get_finished_spans() == ()
    assert continued == TRACE_ID, "an incoming traceparent is continued"
    assert new is not None and new != TRACE_ID, "a request without one starts its own trace"


def test_spans_are_recorded_when_asked_or_when_a_sampler_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    exporter, continued, _, recording = _spans(True)
    assert recording and [s.name for s in exporter.get_finished_spans()] == ["continued", "new"]
    assert continued == trace_id_of(TRACEPARENT)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    exporter, _, _, recording = _spans(None)
    assert recording and len(exporter.get_finished_spans()) == 2


def test_whether_spans_are_recorded_is_known_from_the_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import trace

    monkeypatch.setattr(trace, "get_tracer_provider", lambda: make_provider("tests"))
    assert not recording()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: make_provider("tests", record=True))
    assert recording()
