"""The one way to reach a service's database: async SQLAlchemy on PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event, func
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.kernel.errors import is_disconnect
from shared.kernel.runtime import kernel_runtime
from shared.kernel.writes import send_deferred

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


def make_engine(url: str, *, pool_size: int = 10, server_settings: Mapping[str, str] | None = None) -> AsyncEngine:
    """`server_settings`: session settings every connection starts with (what a trigger may read)."""
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping (three statements on every checkout). A restarted PostgreSQL leaves dead
        # connections in the pool: those whose socket the server closed are replaced at checkout
        # at no cost (_discard_closed), and a request that still meets a dead one before it
        # committed anything is run again (get_session, shared/web/contention.py).
        pool_timeout=5,
        connect_args={"timeout": 5, "command_timeout": 30, "server_settings": dict(server_settings or {})},
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
    sessionmaker: async_sessionmaker[AsyncSession] = kernel_runtime(request.app).sessionmaker
    async with sessionmaker() as session:
        try:
            try:
                yield session
                # The audit row of a request that went well commits with what it did (shared/web/audit.py).
                before_commit: Callable[[Request, AsyncSession], Awaitable[None]] | None = kernel_runtime(
                    request.app
                ).before_commit
                if before_commit is not None:
                    await before_commit(request, session)
            except DBAPIError as exc:
                if is_disconnect(exc):
                    # The connection died before COMMIT was sent, so the server wrote nothing of
                    # this transaction: the request may run again (shared/kernel/errors.py marks
                    # the answer, shared/web/contention.py reruns it on a fresh connection).
                    request.state.rerun_safe = True
                raise
            # Not so for the deferred rows (shared/kernel/writes.py), which in autocommit are the
            # commit, nor for COMMIT itself: a connection lost under either leaves the outcome unknown.
            await send_deferred(session)
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        hooks: CommitHooks | None = kernel_runtime(request.app).commit_hooks
        if hooks is not None:
            hooks(session)


# scope="function": the commit happens before the response is sent, so a 201 is never
# answered for a transaction that then fails to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
