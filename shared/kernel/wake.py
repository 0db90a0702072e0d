"""Waiting to be woken, at most so long: what every background loop does between rounds."""

from __future__ import annotations

import asyncio


async def woken(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; whether it was set.

    asyncio.timeout, not wait_for: Python 3.11's wait_for returns normally when the task is
    cancelled just as the event is set (a commit or a NOTIFY at shutdown), and the loop would
    outlive its app (the outbox relay did, holding its publishing lock against the next app's)."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
