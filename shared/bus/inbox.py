"""Idempotent consumers: each processed event id is recorded in the same transaction as
its effect, so a redelivered event changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from pydantic import ValidationError
from sqlalchemy import Column, DateTime, MetaData, Table, Text, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.batch import BatchHandler, event_span, first_time, unnest
from shared.bus.kafka import (
    Generations,
    Position,
    consumer_options,
    ensure_topics,
    make_producer,
    position,
    stop_within,
    within,
)
from shared.contracts.envelope import REGISTRY, CloudEvent
from shared.contracts.topics import TOPIC_DEADLETTER, TOPIC_OWNERS, TOPICS
from shared.kernel.errors import sqlstate
from shared.kernel.settings import Settings
from shared.kernel.tracing import batch_span, untraced

log = logging.getLogger("obruten.inbox")

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]
# Runs once per batch, in the batch's transaction after its events were applied: for work that
# is cheaper done once for the whole batch (notify evaluates the placements the batch touched).
BatchHook = Callable[[AsyncSession], Awaitable[None]]


class PoisonEvent(Exception):
    """Raised by a handler for an event that can never be applied (it is dead-lettered)."""


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        # CloudEvents makes source + id unique.
        Column("source", Text, primary_key=True),
        Column("event_id", Text, primary_key=True),
        Column("type", Text, nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


async def claim(session: AsyncSession, table: Table, event: CloudEvent) -> bool:
    """Record the event as processed; False when it already was (a redelivery)."""
    return bool(await claim_many(session, table, [event]))


async def claim_many(session: AsyncSession, table: Table, events: Sequence[CloudEvent]) -> set[tuple[str, str]]:
    """`claim` for a batch in one statement: the (source, id) of the events not processed before."""
    if not events:
        return set()
    params = {
        "source": [e.source for e in events],
        "event_id": [e.id for e in events],
        "type": [e.type for e in events],
    }
    rows = await session.execute(_claim_statement(table), params)
    return {(row.source, row.event_id) for row in rows}


@functools.cache
def _claim_statement(table: Table) -> Any:
    # Built once per inbox: the same statement object is a cache hit for SQLAlchemy's compiler.
    columns = ["source", "event_id", "type"]
    return (
        insert(table)
        .from_select(columns, unnest(table, columns))
        .on_conflict_do_nothing()
        .returning(table.c.source, table.c.event_id)
    )


class EventConsumer:
    """Consumes topics into a service's database, at least once, applying each event once.

    Offsets are committed by hand after the effect's transaction commits (the default
    auto-commit would make it at-most-once). A CommitFailedError after a rebalance is
    harmless: the next owner redelivers and the inbox absorbs it.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        group_id: str,
        topics: Sequence[str],
        sessionmaker: async_sessionmaker[AsyncSession],
        inbox: Table,
        handler: Handler,
        after_batch: BatchHook | None = None,
        after_commit: Callable[[AsyncSession], None] | None = None,
        max_batch: int = 500,
        # shared.web.metrics.Metrics (the bus layer does not import the web layer): counters by name.
        metrics: Any = None,
    ) -> None:
        self.settings = settings
        self.group_id = group_id
        self.topics = list(topics)
        self.sessionmaker = sessionmaker
        self.inbox = inbox
        self.handler = handler
        self.after_batch = after_batch
        # The service's commit hooks: a batch that wrote an event or a webhook delivery wakes
        # the relay and the sender as a request does.
        self.after_commit = after_commit
        self.processed = 0
        # Up to this many events share one transaction (one commit, one offset commit).
        self.max_batch = max_batch
        self.dead_lettered = 0
        # Events refused because their source or type does not belong to the topic (forged or
        # misrouted); each is also dead-lettered with the reason.
        self.foreign = 0
        self.metrics = metrics
        self._producer: AIOKafkaProducer | None = None

    async def run(self) -> None:
        backoff = 0.5
        while True:
            consumer: AIOKafkaConsumer | None = None
            try:
                await within(
                    ensure_topics(self.settings, TOPICS),
                    self.settings.kafka_request_timeout_ms / 1000 + 1,
                    "ensuring the topics",
                )
                consumer = AIOKafkaConsumer(**consumer_options(self.settings, self.settings.topic(self.group_id)))
                generations = Generations()
                consumer.subscribe([self.settings.topic(t) for t in self.topics], listener=generations)
                await consumer.start()
                backoff = 0.5
                while True:
                    generation = generations.count
                    # Returns as soon as a fetch brings records; the timeout only bounds an idle
                    # wait. What an event waits for on the broker is kafka_fetch_max_wait_ms.
                    batches = await consumer.getmany(timeout_ms=500, max_records=self.max_batch)
                    if not batches:
                        continue
                    # Every partition of one fetch in one transaction: one claim, one statement
                    # per table, one evaluation and one commit, however the events spread over
                    # the partitions (a partition's own events stay in their order).
                    await self._process_batch([record for records in batches.values() for record in records])
                    # A batch fetched before a rebalance (a rejoin after the broker came back)
                    # may have been read from a position that the group no longer holds: the
                    # embedded broker forgets topics and offsets on restart, so a stale
                    # position committed there would skip the events written since. Its
                    # effect is kept; the offset is left for the new assignment to decide,
                    # and the inbox absorbs the redelivery.
                    if generations.count == generation:
                        await self._commit(consumer, {tp: records[-1].offset + 1 for tp, records in batches.items()})
                    for tp, records in batches.items():
                        self._observe_lag(consumer, tp, records[-1].offset + 1)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer failed; restarting", extra={"group": self.group_id, "error": repr(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                if consumer is not None:
                    await stop_within(consumer, 5)

    def _observe_lag(self, consumer: AIOKafkaConsumer, tp: TopicPartition, next_offset: int) -> None:
        highwater = consumer.highwater(tp)
        if self.metrics is not None and highwater is not None:
            lag = max(highwater - next_offset, 0)
            self.metrics.consumer_lag.labels(self.group_id, tp.topic, str(tp.partition)).set(lag)

    def _count(self, counter: str, etype: str) -> None:
        if self.metrics is not None:
            getattr(self.metrics, counter).labels(self.group_id, etype).inc()

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except CommitFailedError:
            log.info("offset commit lost to a rebalance; redelivery is absorbed by the inbox")

    def _parse(self, record: ConsumerRecord[bytes, bytes]) -> CloudEvent:
        if record.value is None:
            raise PoisonEvent("empty message")
        try:
            # Parsed and validated in one pass by pydantic-core; what fails is read again below
            # to say why (not JSON, or not a CloudEvent).
            event = CloudEvent.model_validate_json(record.value)
        except ValidationError:
            try:
                raw = json.loads(record.value)
            except ValueError as exc:
                raise PoisonEvent(f"not JSON: {exc}") from exc
            try:
                event = CloudEvent.model_validate(raw)
            except ValidationError as exc:
                raise PoisonEvent(f"not a CloudEvent: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}") from exc
        etype = REGISTRY.get(event.type)
        if etype is None:
            raise PoisonEvent(f"unknown event type {event.type}")
        self._check_owner(record.topic, event, etype.topic)
        try:
            etype.parse(event)
        except ValidationError as exc:
            raise PoisonEvent(f"invalid data: {exc.errors()[0]['loc']} {exc.errors()[0]['msg']}") from exc
        return event

    def _check_owner(self, topic: str, event: CloudEvent, type_topic: str) -> None:
        """Only the producer that owns a topic may speak on it: an event with another `source`
        (or of a type another topic carries) is refused, whatever its version or data say."""
        name = topic.removeprefix(self.settings.kafka_topic_prefix)
        owner = TOPIC_OWNERS.get(name)
        if owner is not None and event.source != owner:
            self.foreign += 1
            raise PoisonEvent(f"source {event.source[:100]!r} does not own topic {name} (its producer is {owner})")
        if type_topic != name:
            self.foreign += 1
            raise PoisonEvent(f"event type {event.type} belongs on {type_topic}, not {name}")

    async def _process_batch(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Apply one fetch's records (several partitions live, one partition in a replay) in one
        transaction: one commit (one fsync) and one offset commit per batch instead of per event.

        First as it comes, without savepoints: what nearly every batch needs. If an event turns
        out never to be applicable (PoisonEvent, a data or constraint error: SQLSTATE class 22 or
        23), the batch is rolled back and applied again with a SAVEPOINT per event, so that event
        loses only its savepoint and is dead-lettered. Anything else (the database gone, a
        deadlock) rolls back the batch, which is retried whole after a pause: the inbox makes the
        replay harmless. The `after_batch` hook runs in the same transaction after the events.
        Dead letters go out after the commit, in offset order, so a retried batch parks nothing twice.
        """
        parsed: list[tuple[ConsumerRecord[bytes, bytes], CloudEvent | str]] = []
        for record in records:
            try:
                parsed.append((record, self._parse(record)))
            except PoisonEvent as exc:
                parsed.append((record, str(exc)))
        events = [(record, item) for record, item in parsed if isinstance(item, CloudEvent)]
        backoff = 0.2
        isolate = False
        while True:
            rejected: dict[Position, str] = {}
            try:
                if events:
                    rejected = await self._apply(events, isolate=isolate)
                break
            except asyncio.CancelledError:
                raise
            except (PoisonEvent, DBAPIError) as exc:
                if not isolate and (isinstance(exc, PoisonEvent) or _data_error(exc)):
                    isolate = True  # again at once, each event under its own savepoint
                    continue
                await self._pause(records, exc, backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception as exc:
                await self._pause(records, exc, backoff)
                backoff = min(backoff * 2, 10.0)
        self.processed += len(events) - len(rejected)
        for record, event in events:
            self._count("events_rejected" if position(record) in rejected else "events_consumed", event.type)
        for record, item in parsed:
            parked = item if isinstance(item, str) else rejected.get(position(record))
            if parked is not None:
                etype = item.type if isinstance(item, CloudEvent) else "unparsed"
                if isinstance(item, str):
                    self._count("events_rejected", etype)
                await self._dead_letter(record, parked)
                self._count("events_dead_lettered", etype)

    async def _apply(
        self, events: Sequence[tuple[ConsumerRecord[bytes, bytes], CloudEvent]], *, isolate: bool
    ) -> dict[Position, str]:
        """One transaction; returns the events rejected (by topic, partition and offset, with the reason)."""
        rejected: dict[Position, str] = {}
        # One span for the batch, linked to each event's trace (OpenTelemetry's messaging batch
        # conventions): its statements and evaluation (the alerts it raises) serve every event.
        with batch_span(
            f"{self.group_id} process",
            [e.traceparent for _, e in events],
            [{"messaging.message.id": e.id, "cloudevents.event_type": e.type} for _, e in events],
            **{"messaging.system": "kafka", "messaging.batch.message_count": len(events)},
        ):
            # No span per SQL statement (as costly as the statement) but on the savepoint path.
            with untraced() if not isolate else contextlib.nullcontext():
                async with self.sessionmaker() as session, session.begin():
                    if not isolate:
                        # One inbox statement for the batch; an event twice in it is applied once.
                        fresh = await claim_many(session, self.inbox, [event for _, event in events])
                        await self._apply_fresh(session, [e for _, e in events if first_time(fresh, e)])
                    else:
                        for record, event in events:
                            reason = await self._apply_isolated(session, event)
                            if reason is not None:
                                rejected[position(record)] = reason
                    if self.after_batch is not None:
                        await self.after_batch(session)
        if self.after_commit is not None:
            self.after_commit(session)
        return rejected

    async def _apply_fresh(self, session: AsyncSession, events: Sequence[CloudEvent]) -> None:
        """The batch's events not seen before: all at once for a BatchHandler (set-based SQL),
        else one by one."""
        if isinstance(self.handler, BatchHandler):
            await self.handler.apply(session, events)
            return
        for event in events:
            with event_span(self.group_id, event):
                await self.handler(session, event)

    async def _apply_isolated(self, session: AsyncSession, event: CloudEvent) -> str | None:
        """One event under its own savepoint; the reason it was refused, or None."""
        try:
            with event_span(self.group_id, event):
                async with session.begin_nested():
                    if await claim(session, self.inbox, event):
                        await self.handler(session, event)
        except PoisonEvent as exc:
            return str(exc)
        except DBAPIError as exc:
            if not _data_error(exc):
                raise
            # The SQLSTATE and class only: a server message may quote the row's values.
            return f"not applicable: SQLSTATE {sqlstate(exc)} ({type(exc).__name__})"
        return None

    async def _pause(self, records: Sequence[ConsumerRecord[bytes, bytes]], exc: Exception, backoff: float) -> None:
        log.warning(
            "batch not applied; retrying it whole",
            extra={"events": len(records), "first_offset": records[0].offset, "error": repr(exc), "retry_in": backoff},
        )
        await asyncio.sleep(backoff)

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        log.error(
            "event dead-lettered",
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset, "reason": reason},
        )
        headers: list[tuple[str, bytes]] = [
            ("obruten-reason", reason.encode()[:1000]),
            ("obruten-consumer-group", self.group_id.encode()),
            ("obruten-original-topic", record.topic.encode()),
            ("obruten-original-partition", str(record.partition).encode()),
            ("obruten-original-offset", str(record.offset).encode()),
        ]
        # Bounded like the relay's publishing: a broker that went away must not wedge the
        # consumer. On failure the consumer restarts; the offset was not committed, so the
        # event comes back and is parked then.
        timeout = self.settings.kafka_request_timeout_ms / 1000 + 1
        try:
            if self._producer is None:
                self._producer = make_producer(self.settings)
                await within(self._producer.start(), timeout, "starting the dead-letter producer")
            await within(
                self._producer.send_and_wait(
                    self.settings.topic(TOPIC_DEADLETTER), value=record.value, key=record.key, headers=headers
                ),
                timeout,
                "parking an event",
            )
        except BaseException:
            producer, self._producer = self._producer, None
            if producer is not None:
                await stop_within(producer, 5)
            raise
        self.dead_lettered += 1

    async def close(self) -> None:
        if self._producer is not None:
            await stop_within(self._producer, 5)


def _data_error(exc: DBAPIError) -> bool:
    """The event's own data is at fault (SQLSTATE 22 data exception, 23 constraint violation):
    applying it again would fail again, so it is dead-lettered rather than retried."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    state = sqlstate(exc)
    return state is not None and state.startswith(("22", "23"))


def event_data(event: CloudEvent) -> Any:
    """The event's payload as its declared pydantic model."""
    return REGISTRY[event.type].parse(event)
