"""Lock contention that still happens: a deadlock or a serialization failure is retried.

The writers of each service take their locks in one order (for placements: the child first,
services/placement/service.py), so PostgreSQL should not have to break a deadlock. If it does
(SQLSTATE 40P01), or a serializable transaction loses (40001), nothing was written: the request
is run again from the start, a few times with a short jittered pause. When it keeps losing, the
answer is 503 problem+json with Retry-After, never a 500.

The same holds for a request whose database connection proved dead before its COMMIT was sent
(a PostgreSQL restart; the pool has no pre-ping): the server kept nothing of it, and it is run
again on a fresh connection (shared/kernel/db.py get_session marks it). Reads too: they write
nothing, so they are always safe to run again.
"""

from __future__ import annotations

import asyncio
import logging
import random

from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.kernel.errors import RERUN_HEADER, sqlstate

log = logging.getLogger("obruten.contention")

CONTENTION_STATES = frozenset({"40001", "40P01"})
# Set by the error handler on a contention answer, so this layer knows it may run the request
# again; removed before anything reaches the client.
MARK = RERUN_HEADER.encode()
ATTEMPTS = 4


def is_contention(exc: DBAPIError) -> bool:
    return sqlstate(exc) in CONTENTION_STATES


class RetryOnContention:
    """Runs a request again when its first answer was a 503 marked safe to rerun (see MARK). Sits
    inside the audit layer, so the trail records the request once, with its final answer."""

    def __init__(self, app: ASGIApp, attempts: int = ATTEMPTS) -> None:
        self.app = app
        self.attempts = attempts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        if more is not None:  # the client went away mid-body; let the app see it
            await self.app(scope, _replay(body, receive, more), send)
            return
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            if await self._attempt(scope, _replay(body, receive), send, last=last):
                return
            log.info("lock contention or a lost connection; running the request again", extra={"attempt": attempt})
            await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)

    async def _attempt(self, scope: Scope, receive: Receive, send: Send, *, last: bool) -> bool:
        """True when the answer went to the client; False when it was a contention to retry."""
        dropped = False
        state = scope.get("state")
        if isinstance(state, dict):
            state.pop("rerun_safe", None)  # what an earlier attempt found says nothing of this one

        async def send_or_drop(message: Message) -> None:
            nonlocal dropped
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                marked = any(name == MARK for name, _ in headers)
                if marked and not last:
                    dropped = True
                    return
                message = {**message, "headers": [h for h in headers if h[0] != MARK]}
            if not dropped:
                await send(message)

        await self.app(scope, receive, send_or_drop)
        return not dropped


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, receive: Receive, pending: Message | None = None) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if pending is not None:
            return pending
        return await receive()

    return replay
