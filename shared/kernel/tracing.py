"""One trace from a write to its alert: OpenTelemetry with W3C trace context.

The `traceparent` of the request that wrote a record is stored on its outbox row and carried in
the event as the CloudEvents distributed-tracing extension (attribute `traceparent`). Consumers
continue that trace, so a placement write, its event, notify's evaluation, the alert and its
webhook delivery are one trace. Spans are exported over OTLP only when the standard
OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise nothing leaves the process, and spans are not even
recorded (their ids still propagate, so traceparents and the ids in log lines stay).

Propagation rides in the envelope rather than in Kafka headers: the relay publishes long after
the request's context is gone, and the outbox row is what remembers it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig

__all__ = [
    "SpanKind",
    "batch_span",
    "configure_tracing",
    "continuing",
    "current_traceparent",
    "instrument_httpx",
    "log_ids",
    "publish_span",
    "span_context_of",
    "telemetry_config",
    "trace_id_of",
    "tracer",
    "untraced",
]

_PROPAGATOR = TraceContextTextMapPropagator()
# The SDK's default limit of links on one span (SpanLimits.max_links).
MAX_LINKS = 128
tracer = trace.get_tracer("obruten")


def configure_tracing(service: str, *, record: bool | None = None) -> None:
    """Install the process's tracer provider (once; a provider already set, as a test's, wins)."""
    from opentelemetry.sdk.trace import TracerProvider

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    trace.set_tracer_provider(make_provider(service, record=record))


def make_provider(service: str, *, record: bool | None = None) -> Any:
    """The tracer provider of a service process. `record`: whether spans are recorded; by default
    they are when they are exported, or when the standard OTEL_TRACES_SAMPLER chooses a sampler
    (which then decides, e.g. a ratio). A span recorded with no exporter goes nowhere, and
    recording (attributes checked and copied, the span's end) is most of what tracing costs."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    exporting = any(os.environ.get(v) for v in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    if record is None:
        record = exporting or bool(os.environ.get("OTEL_TRACES_SAMPLER"))
    resource = Resource.create({"service.name": f"obruten-{service}"})
    # Not recorded: ALWAYS_OFF still gives every span a valid context (a new trace id, or the
    # incoming one continued), only marked not sampled, so traceparents and log ids stay.
    provider = TracerProvider(resource=resource) if record else TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    if exporting:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


# Requests that make no server span: probes and the metrics scrape, many a minute and no story.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _untraced(scope: Any) -> bool:
    return scope.get("path") in UNTRACED_PATHS


def telemetry_config() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry (`FastAPI(telemetry=...)`): a server span per request,
    continuing an incoming traceparent, named by the route the router matched. It replaces the
    contrib FastAPIInstrumentor, which wrapped the middleware stack in two more layers and
    matched every route a second time to name the span. The tracer provider is looked up per
    request, so one set later (a test's) is used. Metrics stay with Prometheus
    (shared/web/metrics.py) and logs with the process's logging, so neither is sent twice."""
    return {"tracing": True, "metrics": False, "logs": False, "operation_spans": False, "exclude": _untraced}


def recording() -> bool:
    """Whether this process records spans (an SDK provider whose sampler is not ALWAYS_OFF, see
    make_provider): decided when the provider is installed, so it can be asked at start-up."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    sampler = getattr(trace.get_tracer_provider(), "sampler", None)
    return sampler is not None and sampler is not ALWAYS_OFF


def instrument_engine(engine: Any) -> None:
    """A span per SQL statement of this engine (statement text only: parameters are never
    recorded), when spans are recorded: else each statement's span would be made and dropped, its
    text parsed for a name, for nothing. The instrumentation's EngineTracer is attached per engine
    because its instrumentor is a process-wide singleton that instruments only the first engine it is given, and each
    service app (several in one test process) has its own. The instrumentor declares support up
    to SQLAlchemy 2.0; the cursor-execute events it listens to are unchanged in 2.1, and
    tests/end_to_end/test_tracing.py checks that statement spans appear."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import get_meter

    if not recording():
        return
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
def batch_span(
    name: str,
    traceparents: Sequence[str | None],
    link_attributes: Sequence[Mapping[str, Any]] | None = None,
    **attributes: Any,
) -> Iterator[Span]:
    """A span for work done once for a batch of events (a consumer's batch, notify's evaluation):
    it continues the events' trace when they all share one, and links every event's trace either
    way, as OpenTelemetry's messaging conventions do for batch processing. `link_attributes`, one
    mapping per traceparent: what each link says of its event (its message id)."""
    with _linked_span(name, traceparents, link_attributes, SpanKind.CONSUMER, attributes) as span:
        yield span


@contextlib.contextmanager
def publish_span(name: str, traceparents: Sequence[str | None], **attributes: Any) -> Iterator[Span]:
    """The producer span of a batch published at once (the outbox relay's), parented and linked
    to the writers' traces as `batch_span` is, as the conventions do for batch publishing."""
    with _linked_span(name, traceparents, None, SpanKind.PRODUCER, attributes) as span:
        yield span


@contextlib.contextmanager
def _linked_span(
    name: str,
    traceparents: Sequence[str | None],
    link_attributes: Sequence[Mapping[str, Any]] | None,
    kind: SpanKind,
    attributes: dict[str, Any],
) -> Iterator[Span]:
    span_contexts: list[SpanContext] = []
    links: list[Link] = []
    seen: set[str] = set()
    for i, tp in enumerate(traceparents):
        # At most MAX_LINKS, once per traceparent: the SDK keeps no more links than that on a span,
        # and a batch of a thousand events would parse each for nothing.
        if len(links) == MAX_LINKS:
            break
        if tp is None or tp in seen or (sc := span_context_of(tp)) is None:
            continue
        seen.add(tp)
        span_contexts.append(sc)
        links.append(Link(sc, link_attributes[i] if link_attributes is not None else None))
    trace_ids = {sc.trace_id for sc in span_contexts}
    parent = otel_context.Context()  # not the current span's: a trace of its own unless the events share one
    if len(trace_ids) == 1 and len(links) < MAX_LINKS:
        parent = trace.set_span_in_context(NonRecordingSpan(span_contexts[0]), parent)
    with tracer.start_as_current_span(name, context=parent, kind=kind, links=links, attributes=attributes) as span:
        yield span


def span_context_of(traceparent: str | None) -> SpanContext | None:
    """The remote span context a W3C traceparent names, or None (absent or malformed): what
    `context_of` extracts, without building a Context around it, for the links of a batch span
    (one per event, so its cost counts). The propagator's own pattern and rules."""
    if not traceparent or len(traceparent) > _PROPAGATOR._TRACEPARENT_MAXIMUM_LENGTH:
        return None
    match = _PROPAGATOR._TRACEPARENT_HEADER_FORMAT_RE.search(traceparent)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if trace_id == "0" * 32 or span_id == "0" * 16 or version == "ff" or (version == "00" and rest):
        return None
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(int(flags, 16)))


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Within: no spans from the instrumentations (a span per SQL statement, per HTTP call); the
    service's own spans, and the current span that outbox rows take their traceparent from, stay.
    For a consumer batch, where a span per statement cost as much CPU as the statement itself, and
    a background loop's own bookkeeping, which would otherwise start a trace of its own each time."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        yield


def log_ids() -> dict[str, str]:
    """trace_id and span_id of the current span, for log lines."""
    sc = trace.get_current_span().get_span_context()
    if not sc.is_valid:
        return {}
    return {"trace_id": format(sc.trace_id, "032x"), "span_id": format(sc.span_id, "016x")}
