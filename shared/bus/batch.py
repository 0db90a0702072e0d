"""Set-based consumers: a batch of events applied with one statement per table, whatever its size.

A consumer batch can hold hundreds of events; one statement per event costs a round trip and,
above all, SQLAlchemy's statement construction each time. Here the batch's rows travel as one
array per column (`INSERT … SELECT FROM unnest($1::uuid[], $2::int[], …)`): the statement text
does not depend on the number of rows, so it is compiled and prepared once and reused.

One `INSERT … ON CONFLICT DO UPDATE` cannot touch the same row twice, so a batch is first reduced
to one row per key, as applying its events one by one in order would leave it (`newest`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Table, bindparam, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from shared.contracts.envelope import CloudEvent
from shared.kernel.tracing import SpanKind, continuing

T = TypeVar("T")


@dataclass(frozen=True)
class BatchHandler:
    """A consumer handler that applies a whole batch at once (shared/bus/inbox.py calls `apply`
    with the batch's events not seen before, in offset order).

    Called with one event it is an ordinary per-event handler: what the consumer uses for a batch
    that holds an event that cannot be applied, each event under its own savepoint, so the bad
    one is parked and the rest applied once."""

    apply: Callable[[AsyncSession, Sequence[CloudEvent]], Awaitable[None]]

    async def __call__(self, session: AsyncSession, event: CloudEvent) -> None:
        await self.apply(session, [event])


def unnest(table: Table, columns: Sequence[str], *, prefix: str = "") -> Select[Any]:
    """`SELECT … FROM unnest(:c1, :c2, …)`: rows whose values come as one array per column, each
    bound parameter named after its column (after `prefix`: an UPDATE reserves the column names)
    and typed as an array of the column's type."""
    arrays = [bindparam(prefix + name, type_=ARRAY(table.c[name].type)) for name in columns]
    rows = func.unnest(*arrays).table_valued(*columns).render_derived()
    return select(*[rows.c[name] for name in columns])


def any_of(column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """`column = ANY($1)`, the values one array parameter: one statement text for any number of
    values, where an IN list makes a new one (and a new prepared statement) for each length and
    binds each value on its own."""
    return cast(ColumnElement[bool], column == func.any(literal(list(values), ARRAY(column.type))))


def any_param(column: Any, name: str) -> ColumnElement[bool]:
    """`any_of` for a statement built once: `column = ANY(:name)`, the values bound at execution
    as one array (`{name: [...]}`), so SQLAlchemy neither builds nor keys the statement anew."""
    return cast(ColumnElement[bool], column == func.any(bindparam(name, type_=ARRAY(column.type))))


def by_column(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, list[Any]]:
    """The parameters of an `unnest` statement: rows turned into one list per column."""
    return {name: [row[name] for row in rows] for name in columns}


def newest(items: Iterable[T], key: Callable[[T], Hashable], version: Callable[[T], int]) -> list[T]:
    """One item per key: the highest version (the first of equal ones, as a version already on
    file is not overwritten by the same version)."""
    best: dict[Hashable, T] = {}
    for item in items:
        k = key(item)
        held = best.get(k)
        if held is None or version(item) > version(held):
            best[k] = item
    return list(best.values())


def _span_attributes(event: CloudEvent) -> dict[str, str]:
    return {"messaging.system": "kafka", "messaging.message.id": event.id, "cloudevents.event_type": event.type}


def event_span(group: str, event: CloudEvent) -> Any:
    """The span of one event's handling, in the event's own trace (current while it runs): for
    an event applied on its own (under its savepoint, or by a per-event handler). A batch applied
    at once has one span for the batch, linked to each event's trace (shared/bus/inbox.py)."""
    return continuing(
        f"{group} apply {event.type}", event.traceparent, kind=SpanKind.CONSUMER, **_span_attributes(event)
    )


def first_time(fresh: set[tuple[str, str]], event: CloudEvent) -> bool:
    """Whether the event is among the inbox's fresh claims, once: an event twice in a batch is
    applied the first time."""
    key = (event.source, event.id)
    if key not in fresh:
        return False
    fresh.discard(key)
    return True
