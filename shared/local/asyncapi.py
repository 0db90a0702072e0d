"""The AsyncAPI 3.0 contract of the bus, generated from the event registry.

`docs/asyncapi.json` is the committed copy; a test fails when it differs from what the code
declares, and another when the code emits an event type the document does not describe.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import shared.contracts
from shared.contracts.envelope import REGISTRY, CloudEvent, EventType
from shared.contracts.topics import TOPIC_DEADLETTER, TOPICS


def load_all_event_types() -> None:
    """Every event type is declared in a module of shared/contracts/: importing them all fills
    the registry, whichever services this checkout runs."""
    for module in pkgutil.iter_modules(shared.contracts.__path__):
        importlib.import_module(f"shared.contracts.{module.name}")


def _message_name(event_type: str) -> str:
    return event_type.removeprefix("obruten.").replace(".", "_")


def _message(etype: EventType) -> dict[str, Any]:
    return {
        "name": etype.type,
        "title": etype.type,
        "summary": etype.description,
        "contentType": "application/cloudevents+json",
        "headers": {
            "type": "object",
            "properties": {
                "content-type": {"const": "application/cloudevents+json"},
                "traceparent": {
                    "type": "string",
                    "description": "The envelope's traceparent, repeated for Kafka-level tooling.",
                },
            },
        },
        "payload": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEvent"},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": etype.type},
                        "dataschema": {"const": etype.dataschema},
                        "subject": {
                            "type": "string",
                            "description": "The child's pseudonymous id (the Kafka key).",
                        },
                        "data": {"$ref": f"#/components/schemas/{etype.data_model.__name__}"},
                    },
                },
            ]
        },
        "bindings": {"kafka": {"key": {"type": "string", "description": "The child's id"}}},
    }


def build_document() -> dict[str, Any]:
    load_all_event_types()
    envelope = CloudEvent.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = {"CloudEvent": {k: v for k, v in envelope.items() if k != "$defs"}}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in TOPICS:
        channels[topic] = {"address": topic, "messages": {}}
        if topic == TOPIC_DEADLETTER:
            channels[topic]["description"] = (
                "Messages a consumer could not apply (not a CloudEvent, unknown type, invalid data), unchanged, "
                "with the reason in the header obruten-reason."
            )
    for etype in sorted(REGISTRY.values(), key=lambda e: e.type):
        data_schema = etype.data_model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in data_schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas.setdefault(etype.data_model.__name__, data_schema)
        name = _message_name(etype.type)
        messages[name] = _message(etype)
        channels[etype.topic]["messages"][name] = {"$ref": f"#/components/messages/{name}"}
    for topic, channel in channels.items():
        op = topic.replace(".", "_")
        operations[f"publish_{op}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{topic}"},
            "messages": [{"$ref": f"#/channels/{topic}/messages/{m}"} for m in channel["messages"]],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Obruten events",
            "version": "1.0.0",
            "description": (
                "Domain events of the Obruten suite. Every message is a CloudEvents 1.0 envelope in structured "
                "JSON mode; the Kafka key and the `subject` are the child's pseudonymous id, so one child's "
                "events keep their order. Events never carry a personnummer, a name or an address."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
