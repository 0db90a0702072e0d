"""What a service hands `obruten replay` (shared/local/replay.py) to rebuild its projection from
the topics: its consumer's group, topics, inbox and handler, and its own reset and finish steps.
Here, below the web layer, so that the spec a service registers (shared/web/registry.py) carries it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.inbox import Handler
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings


@dataclass
class ReplaySpec:
    """A service's replay (services/<name>/replay.py defines REPLAY; its spec.py registers it)."""

    group_id: str
    topics: Sequence[str]
    inbox: Table
    handler: Handler
    reset: Callable[[AsyncSession], Awaitable[None]]
    finish: Callable[[async_sessionmaker[AsyncSession], Settings, Clock], Awaitable[int]]
