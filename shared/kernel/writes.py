"""A request's rows sent together: its record, its outbox row and its audit row reach PostgreSQL
as one statement instead of one each.

Each row is deferred (`defer`) instead of executed, and `send_deferred` (called by
shared.kernel.db.get_session just before the commit, after the audit row joined) inserts them all
at once as data-modifying CTEs, in the order they were deferred. The statement for each shape
(which tables, which columns, which guard) is built once with bind parameters and reused, so
SQLAlchemy compiles it once per process and a request only binds its values.

A guard (`guard`) makes the rows conditional on a locked row still being as the caller read it:
a route that read a record without a lock and checked the rules against it writes only if the
record has not changed meanwhile (`SELECT … FOR UPDATE` in the same statement; nothing at all
is written otherwise, and the request is run again: `Changed`). With the session in autocommit,
such a write is one statement and one round trip, its own transaction.

A row may also be an UPDATE of a row found by its key (`defer_update`): a change of a record, sent
in the same statement as the rows that go with it (its history row, its event, the audit row).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Executable, Select, Table, bindparam, event, exists, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

DEFERRED = "deferred_writes"
GUARD = "deferred_guard"
# What a deferred row's failure means to the caller (a constraint's 409); None to let it propagate.
OnError = Callable[[AsyncSession, DBAPIError], Awaitable[BaseException | None]]


class Changed(Exception):
    """The guarded row changed between the read and the write: nothing was written, and the
    request may run again (shared/kernel/errors.py answers it as contention, which is rerun)."""


@dataclass(frozen=True)
class DeferredRow:
    table: Table
    values: dict[str, Any]
    on_error: OnError | None = None
    # The columns of `values` that find the row to UPDATE; none: the row is INSERTed.
    key: tuple[str, ...] = ()


def defer(session: AsyncSession, table: Table, values: dict[str, Any], on_error: OnError | None = None) -> None:
    """Insert this row with the transaction's other deferred rows, in one statement before the commit."""
    session.info.setdefault(DEFERRED, []).append(DeferredRow(table, values, on_error))


def defer_new(session: AsyncSession, record: Any, on_error: OnError | None = None) -> None:
    """Defer the INSERT of a new ORM object, which is not added to the session: its server-set
    timestamps (`created_at`, `updated_at`) are set here, since the answer is built before the
    row is sent; every other column must already have its value (None is written as NULL)."""
    table: Table = record.__table__
    now = datetime.now(UTC)
    for stamp in ("created_at", "updated_at"):
        if stamp in table.c and getattr(record, stamp, None) is None:
            setattr(record, stamp, now)
    defer(session, table, {c.name: getattr(record, c.key) for c in table.columns}, on_error)


def defer_update(
    session: AsyncSession, table: Table, key: dict[str, Any], values: dict[str, Any], on_error: OnError | None = None
) -> None:
    """UPDATE the row of `table` whose `key` columns have these values, setting `values`, with the
    transaction's other deferred rows (and, guarded, only if the guard finds its row)."""
    session.info.setdefault(DEFERRED, []).append(DeferredRow(table, {**key, **values}, on_error, tuple(key)))


def guard(session: AsyncSession, query: Select[Any], params: dict[str, Any]) -> None:
    """Write the deferred rows only if `query` (a constant `SELECT … FOR UPDATE` with bind
    parameters, given `params`) finds its row; else raise `Changed`."""
    session.info[GUARD] = (query, params)


_statements: dict[tuple[Any, ...], Executable] = {}


def _write(n: int, table: Table, columns: tuple[str, ...], key: tuple[str, ...], g: Any) -> Any:
    """The n-th row's INSERT (or UPDATE by `key`), its values bound as w<n>_<column>; with a
    guard `g`, it writes only if `g` found its row."""
    binds = {c: bindparam(f"w{n}_{c}", type_=table.c[c].type) for c in columns}
    if key:
        stmt = update(table).where(*(table.c[k] == binds[k] for k in key))
        stmt = stmt.values({c: b for c, b in binds.items() if c not in key})
        return stmt if g is None else stmt.where(exists(select(1).select_from(g)))
    if g is None:
        return insert(table).values(binds)
    return insert(table).from_select(list(columns), select(*binds.values()).select_from(g))


def _statement(rows: list[DeferredRow], guarded: Select[Any] | None) -> Executable:
    shape = (guarded, *((r.table, tuple(r.values), r.key) for r in rows))
    stmt = _statements.get(shape)
    if stmt is not None:
        return stmt
    g = guarded.cte("g") if guarded is not None else None
    writes = [_write(n, r.table, tuple(r.values), r.key, g) for n, r in enumerate(rows)]
    if g is None:
        stmt = writes[-1]
        if len(writes) > 1:
            stmt = stmt.add_cte(*(w.cte(f"w{n}") for n, w in enumerate(writes[:-1])))
    else:
        # How many guarded rows there were: 0 means nothing was written.
        stmt = select(func.count()).select_from(g).add_cte(*(w.cte(f"w{n}") for n, w in enumerate(writes)))
    _statements[shape] = stmt
    return stmt


async def send_deferred(session: AsyncSession) -> None:
    """One statement for every row deferred in this transaction (none: no statement)."""
    rows: list[DeferredRow] | None = session.info.pop(DEFERRED, None)
    guarded: tuple[Select[Any], dict[str, Any]] | None = session.info.pop(GUARD, None)
    if not rows:
        return
    params = {f"w{n}_{column}": value for n, r in enumerate(rows) for column, value in r.values.items()}
    if guarded is not None:
        params.update(guarded[1])
    stmt = _statement(rows, guarded[0] if guarded else None)
    # On the session's connection, as Core: the rows are no ORM objects, and the ORM's execute
    # (its event hooks, its result wrapping) costs more than the statement's own binding.
    conn = await session.connection()
    try:
        result = await conn.execute(stmt, params)
    except DBAPIError as exc:
        for row in rows:
            if row.on_error is not None and (answer := await row.on_error(session, exc)) is not None:
                raise answer from exc
        raise
    if guarded is not None and not result.scalar():
        raise Changed


@event.listens_for(Session, "after_rollback")
def _drop_deferred(session: Session) -> None:
    # Rows deferred in a transaction that rolled back belong to nothing any more.
    session.info.pop(DEFERRED, None)
    session.info.pop(GUARD, None)
