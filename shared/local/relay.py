"""`obruten relay <service>`: a service's outbox relay as a process of its own.

With OBRUTEN_OUTBOX_RELAY_IN_PROCESS=false the service's processes only write their outbox rows
and this one publishes them: the same OutboxRelay that otherwise runs beside the HTTP server,
woken by the outbox's NOTIFY (shared/bus/outbox.py), one publishing at a time however many run.
The serving processes still report the outbox's backlog on /metrics and /healthz/details.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from shared.bus.outbox import OutboxRelay
from shared.kernel.db import make_engine
from shared.kernel.settings import Settings
from shared.web.registry import service
from shared.web.runtime import runtime

log = logging.getLogger("obruten.relay")
# Its connections: the claim's transaction, the listener, and one to spare.
POOL_SIZE = 2


async def run_relay(settings: Settings, name: str, stop: asyncio.Event) -> None:
    """Publish `name`'s outbox until `stop` is set."""
    # The service's app is built (not started) for what it registers: its outbox and metrics.
    rt = runtime(service(name).create_app(settings))
    if rt.outbox is None:
        raise SystemExit(f"{name} has no outbox to relay")
    engine = make_engine(settings.service_database_url(name), pool_size=POOL_SIZE)
    relay = OutboxRelay(rt.outbox, engine, settings, lock_name=name, metrics=rt.metrics)
    task = asyncio.create_task(relay.run(), name=f"{name}-outbox-relay")
    log.info("relaying the outbox", extra={"service": name})
    try:
        await stop.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await relay.close()
        await engine.dispose()


def main(settings: Settings, name: str) -> int:
    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_relay(settings, name, stop)

    asyncio.run(run())
    return 0
