"""PostgreSQL LISTEN for as long as a service runs: the one way a loop is woken by a commit in
another process (the outbox relay by a trigger on its outbox, notify's evaluation loop by an
earlier due time). Notifications are only a wake-up: a loop that listens still looks at its table
on a timer, so a notification lost while the connection was down delays work, it loses none.

The listening connection is a plain asyncpg connection of its own (a pooled one would be
handed to requests, and LISTEN holds for the connection's life), made from the engine's URL.
After it is lost (a PostgreSQL restart) it connects again, backing off, and calls `on_connect`:
what was notified meanwhile is gone, so the loop should look at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.kernel.wake import woken

log = logging.getLogger("obruten.listen")

# Between attempts to (re)connect, doubling up to the cap.
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 30.0


class Listener:
    """LISTEN on `channel`; `on_notify(payload)` for each notification, `on_connect()` after every
    (re)connection. A connection dropped without a word (no FIN from a vanished host) is found by
    a trivial query every `keepalive_seconds`."""

    def __init__(
        self,
        engine: AsyncEngine,
        channel: str,
        on_notify: Callable[[str], None],
        *,
        on_connect: Callable[[], None],
        keepalive_seconds: float,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.on_notify = on_notify
        self.on_connect = on_connect
        self.keepalive = keepalive_seconds
        # The listening connection's server process, while there is one.
        self.pid: int | None = None

    async def run(self) -> None:
        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        backoff = RECONNECT_FIRST
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(*args, **{**kwargs, "timeout": 5})
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(self.channel, lambda _c, _pid, _ch, payload: self.on_notify(payload))
                self.pid, backoff = conn.get_server_pid(), RECONNECT_FIRST
                self.on_connect()
                await self._hold(conn, lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "listener on %s lost; reconnecting",
                    self.channel,
                    extra={"channel": self.channel, "error": repr(exc), "retry_in": backoff},
                )
            finally:
                self.pid = None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 5)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX)

    async def _hold(self, conn: Any, lost: asyncio.Event) -> None:
        """Until the connection is lost."""
        while not await woken(lost, self.keepalive):
            async with asyncio.timeout(5):
                await conn.fetchval("SELECT 1")
