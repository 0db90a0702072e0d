"""Per source on the school service's /metrics: the last successful sync, its lag, errors."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.last_success = Gauge(
            "obruten_ss12000_last_success_timestamp_seconds",
            "When the source's last sync that read its whole change set finished (Unix time)",
            ["source"],
            registry=registry,
        )
        self.lag = Gauge(
            "obruten_ss12000_lag_seconds",
            "Seconds since the source's last successful sync (since start-up when there was none)",
            ["source"],
            registry=registry,
        )
        self.position = Gauge(
            "obruten_ss12000_position_timestamp_seconds",
            "The newest meta.modified read whole from the source (Unix time)",
            ["source"],
            registry=registry,
        )
        self.errors = Counter(
            "obruten_ss12000_sync_errors_total",
            "Failed syncs by source and kind",
            ["source", "kind"],
            registry=registry,
        )
        self.entities = Counter(
            "obruten_ss12000_entities_total", "Persons read from the source", ["source"], registry=registry
        )
        self.matches = Counter(
            "obruten_ss12000_matches_total", "Persons that matched a placed child", ["source"], registry=registry
        )
        self.malformed = Counter(
            "obruten_ss12000_malformed_total", "Entities dropped as malformed", ["source"], registry=registry
        )
        self._since: dict[str, float] = {}

    def register(self, source: str) -> None:
        self._since[source] = time.time()
        self.lag.labels(source).set_function(lambda: time.time() - self._since[source])

    def succeeded(self, source: str, position: float | None) -> None:
        now = time.time()
        self._since[source] = now
        self.last_success.labels(source).set(now)
        if position is not None:
            self.position.labels(source).set(position)
