"""Bulk import (`POST /v1/imports`), the same in every recording service: a body of
`application/x-ndjson`, one record per line, answered with one report entry per line.

- Each line is all-or-nothing: it runs in a savepoint of the request's transaction, so a line
  that is refused (bad JSON, a field out of range, a date contradicting what is recorded, another
  district's record) leaves nothing behind and never stops the lines after it.
- Each line carries the case system's own id, `external_id`, unique per record table: a line
  whose `external_id` is already recorded with the same values is `unchanged`, so re-sending a
  file changes nothing; with other values it is `refused` (correct a record through its own
  endpoint, not by importing it again).
- The request is still one transaction (as every request, shared/kernel/db.py): the report is
  answered only once everything it calls `created` is committed.
- Refusals name the line's field as it is spelled in the line (`start_date`, not
  `body.start_date`), with the reason the create endpoint would have given. A refusal never
  echoes a value of the line (a personnummer must not be written back into a report that may
  be saved to disk).

Imports have their own rate limit and body size (shared/web/hardening.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.bus.placement_copy import placement_by_external_id
from shared.kernel.errors import Problem, invalid

NDJSON = "application/x-ndjson"
LineT = TypeVar("LineT", bound=BaseModel)


class LineStatus(StrEnum):
    created = "created"
    unchanged = "unchanged"
    refused = "refused"


class ImportLine(BaseModel):
    line: int = Field(description="The line's number in the file, from 1.")
    status: LineStatus
    id: str | None = Field(default=None, description="The record's id (created or unchanged).")
    field: str | None = Field(default=None, description="For a refused line: the field at fault.")
    reason: str | None = Field(default=None, description="For a refused line: why.")


class ImportReport(BaseModel):
    created: int
    unchanged: int
    refused: int
    lines: list[ImportLine] = Field(description="One entry per non-empty line, in the file's order.")


class Outcome(BaseModel):
    """What applying one line did."""

    status: LineStatus
    id: str


def ndjson_body(line_model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a route's ndjson body: each line is one `line_model`."""
    return {
        "requestBody": {
            "required": True,
            "description": "One JSON object per line (newline-delimited JSON); empty lines are skipped.",
            "content": {NDJSON: {"schema": line_model.model_json_schema(ref_template="#/components/schemas/{model}")}},
        }
    }


async def read_lines(request: Request) -> list[tuple[int, str]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != NDJSON:
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"An import is sent as {NDJSON}: one JSON object per line.",
            field="header.content-type",
        )
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "invalid-encoding", "Invalid encoding", "An import is UTF-8.") from None
    return [(n, raw) for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]


def _refusal(n: int, field: str | None, reason: str | None) -> ImportLine:
    return ImportLine(
        line=n, status=LineStatus.refused, field=field.removeprefix("body.") if field else None, reason=reason
    )


def parse_line(n: int, raw: str, model: type[LineT]) -> LineT | ImportLine:
    """The line as `model`, or its refusal."""
    try:
        data = json.loads(raw)
    except ValueError:
        return _refusal(n, None, "not a JSON object")
    if not isinstance(data, dict):
        return _refusal(n, None, "not a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        # A line of several kinds (`record`) is validated as a tagged union: drop the tag from the path.
        loc = [str(p) for p in first["loc"] if p != data.get("record")]
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc.append(str(first.get("ctx", {}).get("discriminator", "")).strip("'"))
        field = ".".join(loc) or None
        return _refusal(n, field, first["msg"])


async def run_import(
    session: AsyncSession,
    lines: list[tuple[int, str]],
    model: type[LineT],
    apply: Callable[[LineT], Awaitable[Outcome]],
    prepare: Callable[[list[LineT]], Awaitable[None]] | None = None,
) -> ImportReport:
    """Apply each line in a savepoint of its own; a Problem refuses the line only. `prepare`
    sees every well-formed line first (to read what they refer to in a few queries)."""
    parsed = [(n, parse_line(n, raw, model)) for n, raw in lines]
    if prepare is not None:
        await prepare([p for _, p in parsed if not isinstance(p, ImportLine)])
    report: list[ImportLine] = []
    for n, line in parsed:
        if isinstance(line, ImportLine):
            report.append(line)
            continue
        try:
            async with session.begin_nested():
                outcome = await apply(line)
        except Problem as problem:
            report.append(_refusal(n, problem.field, problem.detail or problem.title))
            continue
        except IntegrityError:
            # A constraint no check before it saw: a concurrent writer got there first.
            report.append(_refusal(n, None, "conflicts with a record written meanwhile; send the line again"))
            continue
        report.append(ImportLine(line=n, status=outcome.status, id=outcome.id))
    counts = {s: sum(1 for r in report if r.status is s) for s in LineStatus}
    return ImportReport(
        created=counts[LineStatus.created],
        unchanged=counts[LineStatus.unchanged],
        refused=counts[LineStatus.refused],
        lines=report,
    )


class PlacementRef(BaseModel):
    """How a school or health import line names its placement: `placement_id` (Obruten's id), or
    `placement_external_id`, the case system's id the placement was imported with (what a city
    starting out has). Exactly one."""

    placement_id: uuid.UUID | None = None
    placement_external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The placement's external_id in its own import. Resolved from the placement events this "
        "service has consumed: a placement imported moments ago may not be known yet; re-sending the file is safe.",
    )


async def resolve_placement(session: AsyncSession, table: Table, line: PlacementRef) -> uuid.UUID:
    if (line.placement_id is None) == (line.placement_external_id is None):
        raise invalid("body.placement_id", "give either placement_id or placement_external_id")
    if line.placement_id is not None:
        return line.placement_id
    assert line.placement_external_id is not None
    found = await placement_by_external_id(session, table, line.placement_external_id)
    if found is None:
        raise invalid(
            "body.placement_external_id",
            "no placement with this external_id is known here (yet): import the placements first; "
            "re-sending this file is safe",
        )
    return found


def differs(recorded: dict[str, Any], line: dict[str, Any]) -> str | None:
    """The first field whose value in the line is not what is recorded, or None."""
    for key, value in line.items():
        if recorded.get(key) != value:
            return key
    return None


def already_imported(field: str) -> Problem:
    return Problem(
        409,
        "import-conflict",
        "Already imported with other values",
        f"This external_id is already recorded with another {field}; correct the record through its own "
        "endpoint rather than by importing it again.",
        field="external_id",
    )
