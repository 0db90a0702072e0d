"""The one event envelope (CloudEvents 1.0, structured JSON) and the registry of event types.

Every event type is declared once, in its producer's module of shared/contracts/, with the
pydantic model of its `data`; producers and consumers both import it from there. The AsyncAPI
document is generated from this registry, and the outbox refuses to write an event type that
is not in it.
"""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

SCHEMA_BASE = "https://obruten.se/schemas/events/"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 envelope in structured JSON mode."""

    model_config = ConfigDict(extra="allow")  # CloudEvents permits extension attributes

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    # CloudEvents distributed-tracing extension: the W3C trace context of the write that caused
    # the event, so a consumer continues its trace (shared/tracing.py).
    # A malformed one is ignored (a new trace starts), never a reason to refuse the event.
    traceparent: str | None = Field(
        default=None,
        description=(
            "CloudEvents distributed-tracing extension: the W3C Trace Context traceparent of the request "
            "(or consumed event) that wrote this event; consumers continue its trace."
        ),
        examples=["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
    )
    tracestate: str | None = Field(
        default=None, description="CloudEvents distributed-tracing extension: W3C Trace Context tracestate."
    )
    data: dict[str, Any]
    # The data's model once parsed, with the dict it was parsed from (EventType.parse): a consumer
    # validates an event on receipt and its handler reads the model, without validating twice.
    _parsed: tuple[dict[str, Any], Any] | None = PrivateAttr(default=None)


class EventData(BaseModel):
    """Base of every event payload: pseudonymous ids only, never a personnummer, a name or
    an address. Unknown fields are refused so a stray attribute cannot slip into an event."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class EventType:
    type: str
    topic: str
    data_model: builtins.type[EventData]
    description: str
    version: int = 1

    @property
    def dataschema(self) -> str:
        return f"{SCHEMA_BASE}{self.type}/v{self.version}"

    def parse(self, event: CloudEvent) -> Any:
        cached = event._parsed
        # Only for this very dict: a copy of the event with other data is parsed afresh.
        if cached is not None and cached[0] is event.data and isinstance(cached[1], self.data_model):
            return cached[1]
        data = self.data_model.model_validate(event.data)
        event._parsed = (event.data, data)
        return data


REGISTRY: dict[str, EventType] = {}


def event_type(type: str, topic: str, data_model: type[EventData], description: str, version: int = 1) -> EventType:
    if type in REGISTRY and REGISTRY[type].data_model is not data_model:
        raise RuntimeError(f"event type {type} declared twice")
    et = EventType(type, topic, data_model, description, version)
    REGISTRY[type] = et
    return et


def make_event(
    etype: EventType, *, source: str, subject: str, data: EventData, time: datetime, traceparent: str | None = None
) -> CloudEvent:
    if not isinstance(data, etype.data_model):
        raise TypeError(f"{etype.type} carries {etype.data_model.__name__}, not {type(data).__name__}")
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=source,
        type=etype.type,
        subject=subject,
        time=time,
        dataschema=etype.dataschema,
        data=data.model_dump(mode="json"),
        traceparent=traceparent,
    )
