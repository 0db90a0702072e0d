"""What the kernel's request dependencies need of a running service (its clock, its database,
its commit hooks), held in the one attribute a service app keeps on `app.state`: `runtime`.

The full runtime (shared/web/runtime.py: ServiceRuntime) extends this one; the kernel cannot
import the web layer, so its dependencies (get_session, get_clock) read this base."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

    from shared.kernel.clock import Clock
    from shared.kernel.db import CommitHooks


_NOT_STARTED = "the app's database is set up when it starts (its lifespan); it has not started"


@dataclass(kw_only=True)
class KernelRuntime:
    # Replaceable: a test stands a FixedClock in.
    clock: Clock
    # Run after every commit of a request, a consumer batch or a background pass.
    commit_hooks: CommitHooks
    # Run inside a request's transaction just before it commits (the audit row).
    before_commit: Callable[[Request, AsyncSession], Awaitable[None]]
    # Set when the app starts (its lifespan), not when it is built: building an app (for its
    # OpenAPI document, in a unit test) needs no database URL.
    _engine: AsyncEngine | None = field(default=None, init=False, repr=False)
    _sessionmaker: async_sessionmaker[AsyncSession] | None = field(default=None, init=False, repr=False)

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError(_NOT_STARTED)
        return self._engine

    @engine.setter
    def engine(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessionmaker is None:
            raise RuntimeError(_NOT_STARTED)
        return self._sessionmaker

    @sessionmaker.setter
    def sessionmaker(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker


def kernel_runtime(app: FastAPI) -> KernelRuntime:
    found = getattr(app.state, "runtime", None)
    if not isinstance(found, KernelRuntime):
        raise RuntimeError("this app has no service runtime (a service app is built by create_service_app)")
    return found
