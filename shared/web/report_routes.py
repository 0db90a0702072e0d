"""The HTTP side of the reports: content negotiation (JSON or CSV), the response with its
period headers, the OpenAPI entries, and the one route shape every aggregate report has."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from shared.kernel.clock import ClockDep
from shared.kernel.db import SessionDep
from shared.kernel.errors import Problem, invalid
from shared.web.app import SettingsDep
from shared.web.reports import DistrictDep, PeriodDep, Report, ReportTable

TAGS: list[str | Enum] = ["reports"]


# --- content negotiation --------------------------------------------------------------------

_JSON = ("application/json", "application/*", "*/*")
_CSV = ("text/csv", "text/*", "*/*")


def _quality(ranges: list[tuple[str, float]], accepted: tuple[str, ...]) -> float:
    # The most specific matching range decides (RFC 9110, 12.5.1); `accepted` is ordered so.
    for media in accepted:
        for rng, q in ranges:
            if rng == media:
                return q
    return 0.0


async def negotiate(request: Request) -> Literal["json", "csv"]:
    """JSON unless the Accept header prefers CSV; 406 when it allows neither."""
    header = request.headers.get("accept", "").strip()
    if not header:
        return "json"
    ranges: list[tuple[str, float]] = []
    for part in header.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        if media:
            ranges.append((media.lower(), q))
    json_q, csv_q = _quality(ranges, _JSON), _quality(ranges, _CSV)
    if json_q == 0 and csv_q == 0:
        raise Problem(
            406,
            "not-acceptable",
            "Not acceptable",
            "Reports are served as application/json or text/csv.",
            field="header.accept",
        )
    return "csv" if csv_q > json_q else "json"


def to_csv(table: ReportTable[Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)  # excel dialect: RFC 4180 quoting, CRLF
    writer.writerow(table.columns)
    for row in table.rows:
        values = row.model_dump(by_alias=True)
        writer.writerow([values[col] for col in table.columns])
    return buf.getvalue()


Format = Literal["json", "csv"]
# A dependency, so that an unacceptable Accept is refused before the database is asked.
FormatDep = Annotated[Format, Depends(negotiate)]


def respond(report: Report[Any], fmt: Format, *, table: str | None = None) -> Response:
    """The report as JSON or as the CSV of one table (the first, unless named)."""
    chosen = next((t for t in report.tables if table is None or t.name == table), None)
    if chosen is None:
        raise invalid("query.table", f"no such table; expected one of: {', '.join(t.name for t in report.tables)}")
    headers = {
        "X-Obruten-Period": report.period.iso(),
        "X-Obruten-Extracted-At": report.extracted_at.isoformat(),
        "X-Obruten-Suppress-Below": str(report.threshold),
        "Vary": "Accept",
    }
    if fmt == "json":
        return JSONResponse(report.model_dump(mode="json", by_alias=True), headers=headers)
    stem = f"{chosen.name}_{report.period.from_.isoformat()}_{report.period.to.isoformat()}"
    headers["Content-Disposition"] = f'attachment; filename="{stem}.csv"'
    return Response(to_csv(chosen).encode("utf-8"), media_type="text/csv; charset=utf-8", headers=headers)


def report_responses(csv_example: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entries a report route adds besides its JSON model."""
    return {
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}, "example": csv_example}},
            "headers": {
                "X-Obruten-Period": {"description": "The period, `from/to` (ISO 8601).", "schema": {"type": "string"}},
                "X-Obruten-Extracted-At": {"description": "When the figures were read.", "schema": {"type": "string"}},
                "X-Obruten-Suppress-Below": {
                    "description": "The suppression threshold.",
                    "schema": {"type": "integer"},
                },
            },
        },
        406: {"description": "The Accept header allows neither JSON nor CSV."},
        422: {"description": "A bad period (`query.to`), an unknown district (`query.district`) or a bad date."},
    }


PeriodReport = Callable[..., Awaitable[Report[Any]]]


def add_period_report(
    router: APIRouter,
    path: str,
    build: PeriodReport,
    *,
    name: str,
    response_model: type[Report[Any]],
    csv_example: str,
    summary: str,
    description: str,
    own: Callable[[Request], Any] | None = None,
) -> None:
    """A GET report over a period, optionally one district, as JSON or CSV: the route every
    service's aggregate report is. `build(session, period, settings=, clock=, district=)` reads
    the figures (and `own=`, the service's own settings, when `own` reads them from the request);
    `name` is the operation's name in the OpenAPI document."""

    async def endpoint(
        request: Request,
        session: SessionDep,
        settings: SettingsDep,
        clock: ClockDep,
        period: PeriodDep,
        district: DistrictDep,
        fmt: FormatDep,
    ) -> Response:
        extra = {"own": own(request)} if own is not None else {}
        report = await build(session, period, settings=settings, clock=clock, district=district, **extra)
        return respond(report, fmt)

    router.add_api_route(
        path,
        endpoint,
        methods=["GET"],
        name=name,
        response_model=response_model,
        responses=report_responses(csv_example),
        tags=TAGS,
        summary=summary,
        description=description,
    )
