"""`span_context_of` reads a traceparent exactly as the W3C propagator does (`context_of`): the
consumer's batch span links each event through it."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from shared.kernel.tracing import context_of, span_context_of

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "traceparent",
    [
        f"00-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-00",
        f" \t00-{TRACE}-{SPAN}-01 ",
        f"01-{TRACE}-{SPAN}-01-what-a-later-version-adds",
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has nothing after the flags
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}",
        "not a traceparent",
        f"00-{TRACE}-{SPAN}-01" + " " * 600,  # over the header's maximum length
        "",
        None,
    ],
)
def test_span_context_of_agrees_with_the_propagator(traceparent: str | None) -> None:
    ctx = context_of(traceparent)
    expected = trace.get_current_span(ctx).get_span_context() if ctx is not None else None
    got = span_context_of(traceparent)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert (got.trace_id, got.span_id, got.trace_flags, got.is_remote) == (
            expected.trace_id,
            expected.span_id,
            expected.trace_flags,
            expected.is_remote,
        )
