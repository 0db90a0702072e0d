"""Structured JSON logs: ISO 8601 UTC time, service, level, trace and span ids, request id.

Log ids, never a personnummer, a name or an address. Access lines come from
shared/requestlog.py (route templates, no query strings); uvicorn's own access log is off.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from shared.kernel.tracing import log_ids

# The id of the request being served (set by shared/web/requestlog.py), for log lines and problems.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("obruten_request_id", default=None)


class _Context(logging.Filter):
    """Puts the current trace, span and request ids on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in log_ids().items():
            setattr(record, key, value)
        rid = request_id.get()
        if rid is not None:
            record.request_id = rid
        return True


class _Formatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # ISO 8601 in UTC with milliseconds: 2026-12-01T05:53:28.319Z
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_formatter(service: str | None) -> logging.Formatter:
    static: dict[str, Any] | None = {"service": service} if service else None
    return _Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        static_fields=static,
    )


def json_handler(service: str | None, stream: TextIO | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter(service))
    handler.addFilter(_Context())
    return handler


def configure_logging(level: str = "INFO", service: str | None = None) -> None:
    handler = json_handler(service)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Replaced by obruten.access lines (route template, status, duration, request id).
    logging.getLogger("uvicorn.access").disabled = True
    # aiokafka logs every failed connection attempt at ERROR during a broker outage;
    # the relay and consumers report the outage once per retry instead.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
