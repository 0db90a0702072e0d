"""deploy/monitoring/: the Prometheus alert rules and the Grafana dashboard name only metrics the
services export (read from each service's own /metrics, parsed by prometheus_client)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from shared.local.runner import available_services
from shared.web.registry import service as registered

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}
METRIC = re.compile(r"\b((?:obruten|process|python)_[a-z_]+)\b")


def rule_expressions() -> list[str]:
    doc = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert rules and all({"alert", "expr", "annotations"} <= set(r) for r in rules)
    return [r["expr"] for r in rules]


def dashboard_expressions() -> list[str]:
    doc: dict[str, Any] = json.loads((MONITORING / "dashboard.json").read_text())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


async def exported(service_client) -> set[str]:  # type: ignore[no-untyped-def]
    names: set[str] = set()
    # The web service (a front end) exports no metrics yet.
    for service in [s for s in available_services() if not registered(s).front_end]:
        async with service_client(service) as client:
            text = (await client.get("/metrics")).text
        for family in text_string_to_metric_families(text):
            names |= {family.name + s for s in SUFFIXES.get(family.type, ("",))}
    return names


async def test_alert_rules_and_dashboard_name_only_exported_metrics(service_client) -> None:
    names = await exported(service_client)
    for where, expressions in (("alerts.yml", rule_expressions()), ("dashboard.json", dashboard_expressions())):
        used = {m for expr in expressions for m in METRIC.findall(expr)}
        assert used, where
        assert used <= names, f"{where} names metrics no service exports: {sorted(used - names)}"
    # What an operator must watch is there: outbox age, consumer lag, dead letters, tick age.
    watched = " ".join(rule_expressions()) + " ".join(dashboard_expressions())
    for metric in ("obruten_outbox_oldest_unsent_age_seconds", "obruten_consumer_lag",
                   "obruten_events_dead_lettered_total", "obruten_tick_age_seconds"):  # fmt: skip
        assert metric in watched
