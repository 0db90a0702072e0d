"""`obruten import SERVICE FILE`: send a bulk import (shared/web/imports.py) and print its report.

Exit status 0 when every line was created or unchanged, 1 when some were refused (the report
says which and why; fix them and send the same file again: what went in stays unchanged), 2 when
the import was not accepted at all (unreachable service, 4xx/5xx for the whole request).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from shared.kernel.settings import Settings
from shared.web.auth import mint_token
from shared.web.registry import names

NDJSON = "application/x-ndjson"
# An import of tens of thousands of lines is one request: give it time.
TIMEOUT = httpx.Timeout(600.0, connect=10.0)


def add_import_command(sub: Any) -> None:
    imp = sub.add_parser("import", help="send a bulk import file (ndjson, one record a line) and print the report")
    imp.add_argument("service", choices=names())
    imp.add_argument("file", type=Path, help="application/x-ndjson: one JSON record per line")
    imp.add_argument("--url", help="the service's base URL (default: its local port)")
    imp.add_argument("--token", help="bearer token (default: $OBRUTEN_TOKEN, else an admin development token)")
    imp.add_argument("--json", action="store_true", help="print the whole report as JSON")


def _token(settings: Settings, given: str | None) -> str | None:
    if given:
        return given
    if os.environ.get("OBRUTEN_TOKEN"):
        return os.environ["OBRUTEN_TOKEN"]
    key_file = settings.jwt_private_key_file or (settings.data_dir / "keys" / "jwt-private.pem")
    if not Path(key_file).exists():
        return None
    return mint_token(
        Path(key_file).read_bytes(),
        subject="obruten-import",
        roles=["admin"],
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=3600,
    )


def print_report(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    print(f"created {report['created']}, unchanged {report['unchanged']}, refused {report['refused']}")
    for line in report["lines"]:
        if line["status"] == "refused":
            print(f"line {line['line']}: refused: {line.get('field') or '-'}: {line.get('reason')}")


def send_import(
    settings: Settings, service: str, file: Path, *, url: str | None, token: str | None, as_json: bool
) -> int:
    if not file.is_file():
        print(f"no such file: {file}", file=sys.stderr)
        return 2
    base = url or f"http://{settings.host}:{settings.service_port(service)}"
    bearer = _token(settings, token)
    headers = {"Content-Type": NDJSON, **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
    try:
        resp = httpx.post(f"{base.rstrip('/')}/v1/imports", content=file.read_bytes(), headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        print(f"could not reach {service} at {base}: {exc.__class__.__name__}", file=sys.stderr)
        return 2
    if resp.status_code != 200:
        print(f"import refused ({resp.status_code}): {resp.text}", file=sys.stderr)
        return 2
    report: dict[str, Any] = resp.json()
    print_report(report, as_json=as_json)
    return 1 if report["refused"] else 0
