"""The one way to reach a service's database: async SQLAlchemy on PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, Insert, MetaData, Table, bindparam, event, func, insert
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from shared.kernel.errors import is_disconnect

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class ServiceBase:
    """Mixed into each service's own declarative base: each service owns its tables, so
    each has its own MetaData (see service_metadata), but all are configured alike."""

    type_annotation_map = {datetime: DateTime(timezone=True)}
    # Fetch server-set columns (updated_at) with RETURNING after an UPDATE too, so a
    # route can return the object without lazy IO, which async sessions forbid.
    __mapper_args__ = {"eager_defaults": True}


def service_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping (three statements on every checkout). A restarted PostgreSQL leaves dead
        # connections in the pool: those whose socket the server closed are replaced at checkout
        # at no cost (_discard_closed), and a request that still meets a dead one before it
        # committed anything is run again (get_session, shared/web/contention.py).
        pool_timeout=5,
        connect_args={"timeout": 5, "command_timeout": 30},
        # A statement's parameters (a personnummer, a location) stay out of exception messages,
        # and so out of every log line and traceback.
        hide_parameters=True,
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed)
    return engine


def _discard_closed(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    """A pooled connection whose socket is gone (the server shut down or restarted: it closes
    every session's socket, and asyncpg notices while the connection sits idle) is replaced by a
    fresh one before the caller sees it: the pool reconnects on DisconnectionError."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and driver.is_closed():
        raise DisconnectionError("pooled connection closed by the server")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after the commit, so a route can
    # return what it wrote without another round trip (and without lazy IO in async).
    return async_sessionmaker(engine, expire_on_commit=False)


# --- writes sent together ------------------------------------------------------------------------
# A request's rows (its record, its outbox row, its audit row) reach PostgreSQL as one statement:
# each row is deferred (`defer`) and `send_deferred` inserts them all at once, as data-modifying
# CTEs in the order they were deferred, just before the commit. The statement for each shape (which
# tables, which columns) is built once with bind parameters and reused, so SQLAlchemy compiles it
# once per process and each request only binds its values.

DEFERRED = "deferred_writes"
# What a deferred row's failure means to the caller (a constraint's 409); None to let it propagate.
OnError = Callable[[AsyncSession, DBAPIError], Awaitable[BaseException | None]]


@dataclass(frozen=True)
class DeferredRow:
    table: Table
    values: dict[str, Any]
    on_error: OnError | None = None


def defer(session: AsyncSession, table: Table, values: dict[str, Any], on_error: OnError | None = None) -> None:
    """Insert this row with the request's other deferred rows, in one statement before the commit."""
    session.info.setdefault(DEFERRED, []).append(DeferredRow(table, values, on_error))


_batch_statements: dict[tuple[tuple[Table, tuple[str, ...]], ...], Insert] = {}


def _batch_statement(rows: list[DeferredRow]) -> tuple[Insert, dict[str, Any]]:
    shape = tuple((r.table, tuple(r.values)) for r in rows)
    params = {f"w{n}_{column}": value for n, r in enumerate(rows) for column, value in r.values.items()}
    stmt = _batch_statements.get(shape)
    if stmt is None:
        inserts = [
            insert(table).values({c: bindparam(f"w{n}_{c}", type_=table.c[c].type) for c in columns})
            for n, (table, columns) in enumerate(shape)
        ]
        stmt = inserts[-1]
        if len(inserts) > 1:
            stmt = stmt.add_cte(*(ins.cte(f"w{n}") for n, ins in enumerate(inserts[:-1])))
        _batch_statements[shape] = stmt
    return stmt, params


async def send_deferred(session: AsyncSession) -> None:
    """One statement for every row deferred in this transaction (none: no statement)."""
    rows: list[DeferredRow] | None = session.info.pop(DEFERRED, None)
    if not rows:
        return
    stmt, params = _batch_statement(rows)
    try:
        await session.execute(stmt, params)
    except DBAPIError as exc:
        for row in rows:
            if row.on_error is not None and (answer := await row.on_error(session, exc)) is not None:
                raise answer from exc
        raise


@event.listens_for(Session, "after_rollback")
def _drop_deferred(session: Session) -> None:
    # Rows deferred in a transaction that rolled back belong to nothing any more.
    session.info.pop(DEFERRED, None)


CommitHook = Callable[[AsyncSession], None]


class CommitHooks:
    """What runs after any of a service's transactions commits: a request's, a consumer
    batch's, an evaluation tick's. The outbox relay and notify's webhook sender register once
    here and every writer fires them; each hook reads from `session.info` whether the
    transaction wrote what it waits for (`outbox_written`, `webhook_written`)."""

    def __init__(self) -> None:
        self._hooks: list[CommitHook] = []

    def register(self, hook: CommitHook) -> None:
        self._hooks.append(hook)

    def __call__(self, session: AsyncSession) -> None:
        for hook in self._hooks:
            hook(session)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Request-scoped session: commits when the route returns, rolls back when it raises.

    Services never call commit() themselves, so a request is one transaction: the record
    and its outbox row land together or not at all.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            try:
                yield session
                # The audit row of a request that went well commits with what it did (shared/web/audit.py).
                before_commit: Callable[[Request, AsyncSession], Awaitable[None]] | None = getattr(
                    request.app.state, "before_commit", None
                )
                if before_commit is not None:
                    await before_commit(request, session)
                await send_deferred(session)
            except DBAPIError as exc:
                if is_disconnect(exc):
                    # The connection died before COMMIT was sent, so the server wrote nothing of
                    # this transaction: the request may run again (shared/kernel/errors.py marks
                    # the answer, shared/web/contention.py reruns it on a fresh connection).
                    request.state.rerun_safe = True
                raise
            # Not so for COMMIT itself: a connection lost under it leaves the outcome unknown.
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        hooks: CommitHooks | None = getattr(request.app.state, "commit_hooks", None)
        if hooks is not None:
            hooks(session)


# scope="function": the commit happens before the response is sent, so a 201 is never
# answered for a transaction that then fails to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
