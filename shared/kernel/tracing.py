"""One trace from a write to its alert: OpenTelemetry with W3C trace context.

The `traceparent` of the request that wrote a record is stored on its outbox row and carried in
the event as the CloudEvents distributed-tracing extension (attribute `traceparent`). Consumers
continue that trace, so a placement write, its event, notify's evaluation, the alert and its
webhook delivery are one trace. Spans are exported over OTLP only when the standard
OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise nothing leaves the process.

Propagation rides in the envelope rather than in Kafka headers: the relay publishes long after
the request's context is gone, and the outbox row is what remembers it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "SpanKind",
    "batch_span",
    "configure_tracing",
    "continuing",
    "current_traceparent",
    "instrument_httpx",
    "log_ids",
    "publish_span",
    "trace_id_of",
    "tracer",
    "untraced",
]

_PROPAGATOR = TraceContextTextMapPropagator()
# The SDK's default limit of links on one span (SpanLimits.max_links).
MAX_LINKS = 128
tracer = trace.get_tracer("obruten")


def configure_tracing(service: str) -> None:
    """Install the process's tracer provider (once; a provider already set, as a test's, wins)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    provider = TracerProvider(resource=Resource.create({"service.name": f"obruten-{service}"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def instrument_app(app: Any) -> None:
    """Server spans for every request, continuing an incoming traceparent. Before the app first
    runs: the instrumentation wraps the middleware stack Starlette builds then. The tracer
    provider is looked up when spans start, so one set later (a test's) is used."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # Without the instrumentation's internal `http send`/`http receive` spans (three more spans
    # per request, saying only that the ASGI server was handed a message): the server span, its
    # attributes and the trace it continues stay.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics", exclude_spans=["receive", "send"])


def instrument_engine(engine: Any) -> None:
    """A span per SQL statement of this engine (statement text only: parameters are never
    recorded). The instrumentation's EngineTracer is attached per engine because its instrumentor
    is a process-wide singleton that instruments only the first engine it is given, and each
    service app (several in one test process) has its own. The instrumentor declares support up
    to SQLAlchemy 2.0; the cursor-execute events it listens to are unchanged in 2.1, and
    tests/end_to_end/test_tracing.py checks that statement spans appear."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import get_meter

    usage = get_meter("obruten.sqlalchemy").create_up_down_counter("db.client.connections.usage")
    EngineTracer(trace.get_tracer("opentelemetry.instrumentation.sqlalchemy"), engine.sync_engine, usage)  # type: ignore[no-untyped-call]


def instrument_httpx(client: Any) -> None:
    """Client spans for calls to other services and webhook receivers, with traceparent sent."""
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client)


def current_traceparent() -> str | None:
    """The W3C traceparent of the span now current, or None outside any trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: str | None) -> otel_context.Context | None:
    if not traceparent:
        return None
    ctx = _PROPAGATOR.extract({"traceparent": traceparent})
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32 hex digits of a traceparent's trace id."""
    ctx = context_of(traceparent)
    return format(trace.get_current_span(ctx).get_span_context().trace_id, "032x") if ctx else None


@contextlib.contextmanager
def continuing(name: str, traceparent: str | None, *, kind: SpanKind, **attributes: Any) -> Iterator[Span]:
    """A span that continues the trace of `traceparent` (a new trace when there is none)."""
    with tracer.start_as_current_span(name, context=context_of(traceparent), kind=kind, attributes=attributes) as span:
        yield span


@contextlib.contextmanager
def batch_span(name: str, traceparents: Sequence[str | None], **attributes: Any) -> Iterator[Span]:
    """A span for work done once for a batch of events (notify's evaluation): it continues the
    events' trace when they all share one, and links every event's trace either way, as
    OpenTelemetry's messaging conventions do for batch processing."""
    with _linked_span(name, traceparents, SpanKind.CONSUMER, attributes) as span:
        yield span


@contextlib.contextmanager
def publish_span(name: str, traceparents: Sequence[str | None], **attributes: Any) -> Iterator[Span]:
    """The producer span of a batch published at once (the outbox relay's), parented and linked
    to the writers' traces as `batch_span` is, as the conventions do for batch publishing."""
    with _linked_span(name, traceparents, SpanKind.PRODUCER, attributes) as span:
        yield span


@contextlib.contextmanager
def _linked_span(
    name: str, traceparents: Sequence[str | None], kind: SpanKind, attributes: dict[str, Any]
) -> Iterator[Span]:
    # Parsed once per distinct traceparent and at most MAX_LINKS of them: the SDK keeps no more
    # links than that on a span, and a batch of a thousand events would parse each for nothing.
    distinct = list(dict.fromkeys(tp for tp in traceparents if tp))
    contexts = [c for c in (context_of(tp) for tp in distinct[:MAX_LINKS]) if c is not None]
    span_contexts = [trace.get_current_span(c).get_span_context() for c in contexts]
    trace_ids = {sc.trace_id for sc in span_contexts}
    parent = contexts[0] if len(trace_ids) == 1 and len(distinct) <= MAX_LINKS else otel_context.Context()
    links = [Link(sc) for sc in span_contexts]
    with tracer.start_as_current_span(name, context=parent, kind=kind, links=links, attributes=attributes) as span:
        yield span


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """No instrumentation spans within (SQL statements): for a background loop's own bookkeeping,
    which belongs to no request's trace and would otherwise start a trace of its own each time."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


def log_ids() -> dict[str, str]:
    """trace_id and span_id of the current span, for log lines."""
    sc = trace.get_current_span().get_span_context()
    if not sc.is_valid:
        return {}
    return {"trace_id": format(sc.trace_id, "032x"), "span_id": format(sc.span_id, "016x")}
