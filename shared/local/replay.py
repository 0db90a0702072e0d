"""`obruten replay <service>`: rebuild a service's projection from the topics.

The service's own hooks say what its projection is (`reset`: empty it and the inbox, in one
transaction) and what to do once every event is back (`finish`: notify re-evaluates every
placement once). In between, every event still on the topics is read from the beginning and
applied through the service's usual consumer code in batches (the same handler, inbox and
dead-lettering as live consumption, without the per-batch hook), and the consumer group's
offsets are committed as it goes, so the live consumers resume where the replay stopped.

Run it with the service's consumers stopped (scaled to zero): the offset commit of a group that
has live members is refused by the broker, and the command stops then. Only what the topics still
hold can be replayed: it warns when a partition no longer starts at offset 0 (retention).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.inbox import EventConsumer
from shared.bus.kafka import consumer_options
from shared.bus.replay import ReplaySpec
from shared.kernel.clock import Clock, SystemClock
from shared.kernel.db import make_engine, make_sessionmaker
from shared.kernel.settings import Settings
from shared.web.registry import service as registered

log = logging.getLogger("obruten.replay")

# Partition batches applied at once (`_drain`).
APPLIERS = 2


@dataclass
class ReplayResult:
    events: int
    seconds: float
    finished: int  # what `finish` reports (notify: placements evaluated)


async def replay(
    spec: ReplaySpec,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    clock: Clock | None = None,
    batch: int = 2000,
) -> ReplayResult:
    started = time.perf_counter()
    applier = EventConsumer(
        settings=settings,
        group_id=spec.group_id,
        topics=spec.topics,
        sessionmaker=sessionmaker,
        inbox=spec.inbox,
        handler=spec.handler,
        max_batch=batch,
    )
    consumer = AIOKafkaConsumer(**consumer_options(settings, settings.topic(spec.group_id)), max_poll_records=batch)
    start = _FromTheStart(consumer)
    consumer.subscribe([settings.topic(t) for t in spec.topics], listener=start)
    await consumer.start()
    try:
        await _take_every_partition(consumer, start, [settings.topic(t) for t in spec.topics])
        # Only now, with the whole group's partitions held, is the projection emptied.
        async with sessionmaker() as session, session.begin():
            await spec.reset(session)
        await consumer.seek_to_beginning(*consumer.assignment())
        events = await _drain(consumer, applier, start)
    finally:
        await consumer.stop()
        await applier.close()
    finished = await spec.finish(sessionmaker, settings, clock or SystemClock())
    return ReplayResult(events, time.perf_counter() - started, finished)


class _FromTheStart(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment: every partition back to its first offset."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.assigned = False

    async def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        partitions = list(assigned)
        if not partitions:
            return
        await self.consumer.seek_to_beginning(*partitions)
        begin = await self.consumer.beginning_offsets(partitions)
        for tp, offset in begin.items():
            if offset > 0:
                log.warning("partition starts after offset 0: older events are gone", extra={"partition": str(tp)})
        self.assigned = True


async def _take_every_partition(consumer: AIOKafkaConsumer, start: _FromTheStart, topics: list[str]) -> None:
    """Join the group and check that this member holds every partition: with notify's consumers
    still running, the group would split the partitions and the replay would rebuild a part."""
    deadline = time.monotonic() + 60
    while not start.assigned:
        if time.monotonic() > deadline:
            raise RuntimeError("no partitions assigned within 60 s")
        await consumer.getmany(timeout_ms=200)
    held = {(tp.topic, tp.partition) for tp in consumer.assignment()}
    every = {(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()}
    if held != every:
        raise RuntimeError(
            f"this replay holds {len(held)} of {len(every)} partitions: the service's consumers are still "
            "running; scale them to zero first (docs/operations.md)"
        )


async def _drain(consumer: AIOKafkaConsumer, applier: EventConsumer, start: _FromTheStart) -> int:
    """Apply everything from the beginning, committing as it goes, until a fetch comes back empty
    with every partition at its end offset (events written meanwhile are applied too).

    Up to APPLIERS partition batches are applied at once, each in its own transaction, so that one
    is parsed while another waits for the database; batches of one partition stay in order, and
    a partition's offset is committed only after its batch's transaction."""
    events = 0
    running: dict[TopicPartition, asyncio.Task[None]] = {}
    slots = asyncio.Semaphore(APPLIERS)  # never more transactions than that (the pool is small)

    async def apply(tp: TopicPartition, records: Sequence[Any], before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await before
        async with slots:
            await applier._process_batch(records)
        await consumer.commit({tp: records[-1].offset + 1})

    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=applier.max_batch)
        for tp, records in batches.items():
            running[tp] = asyncio.create_task(apply(tp, records, running.get(tp)))
            events += len(records)
        while len(running) > (APPLIERS - 1 if batches else 0):
            done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
            for tp, task in list(running.items()):
                if task in done:
                    del running[tp]
                    task.result()  # a batch that failed stops the replay
        if batches or not start.assigned:
            continue
        partitions = list(consumer.assignment())
        end = await consumer.end_offsets(partitions)
        positions = {tp: await consumer.position(tp) for tp in partitions}
        if all(positions[tp] >= end[tp] for tp in partitions):
            return events


def main(settings: Settings, service: str) -> int:
    from shared.kernel.logging import configure_logging

    spec = registered(service).replay
    if spec is None:
        print(f"obruten: {service} has no projection to replay", file=sys.stderr, flush=True)
        return 2
    configure_logging(settings.log_level, f"{service}-replay")

    async def run() -> ReplayResult:
        engine = make_engine(settings.service_database_url(service), pool_size=2)
        try:
            return await replay(spec, settings, make_sessionmaker(engine))
        finally:
            await engine.dispose()

    result = asyncio.run(run())
    print(
        f"obruten: replayed {result.events} events into {service}'s projection in {result.seconds:.1f} s; "
        f"{result.finished} re-evaluated",
        flush=True,
    )
    return 0
