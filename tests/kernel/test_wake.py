"""shared/kernel/wake.py: a background loop's wait between rounds."""

from __future__ import annotations

import asyncio

import pytest

from shared.kernel.wake import woken


async def test_it_says_whether_it_was_woken_or_timed_out() -> None:
    event = asyncio.Event()
    assert await woken(event, 0.01) is False
    event.set()
    assert await woken(event, 10) is True


async def test_a_cancellation_that_arrives_as_the_event_is_set_stops_the_loop() -> None:
    # Python 3.11's asyncio.wait_for returns normally here, and a loop built on it outlived its app.
    event = asyncio.Event()
    waiting = asyncio.create_task(woken(event, 10))
    await asyncio.sleep(0)
    event.set()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
