"""Transactional outbox: a record and the event announcing it commit in one transaction.

A relay publishes unsent rows to Kafka in order and marks them sent. A broker outage
delays events; it never loses them and never fails the write that produced them.
Columns follow Debezium's outbox conventions (id, aggregatetype, aggregateid, type, payload).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import zlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.kafka import ensure_topics, make_producer, stop_within, within
from shared.contracts.envelope import EventData, EventType, make_event
from shared.contracts.topics import TOPICS
from shared.kernel.settings import Settings
from shared.kernel.tracing import SpanKind, continuing, current_traceparent
from shared.kernel.writes import OnError, defer

log = logging.getLogger("obruten.outbox")
# While another replica's relay holds the publishing lock: how soon to try again.
LOCK_RETRY_SECONDS = 0.05


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        # seq orders publication: one child's events leave in the order they were written.
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("id", Uuid, nullable=False, unique=True),
        Column("aggregatetype", Text, nullable=False),  # the topic
        Column("aggregateid", Text, nullable=False),  # the Kafka key: the child's id
        Column("type", Text, nullable=False),
        Column("payload", JSONB, nullable=False),  # the whole CloudEvent
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("sent_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text),
        # W3C traceparent of the request (or consumed event) that wrote the row: the relay's
        # publish continues that trace, and the event carries it (shared/tracing.py).
        Column("traceparent", Text),
        Index("ix_outbox_unsent", "seq", postgresql_where=text("sent_at IS NULL")),
    )


class Outbox:
    """What a service writes its events through, inside the request's transaction."""

    def __init__(self, table: Table, source: str) -> None:
        self.table = table
        self.source = source

    async def add(
        self, session: AsyncSession, etype: EventType, *, subject: str, data: EventData, time: datetime
    ) -> str:
        values = self.row(etype, subject=subject, data=data, time=time)
        await session.execute(self.table.insert().values(**values))
        # Lets the session dependency wake the relay right after the commit.
        session.info["outbox_written"] = True
        return str(values["id"])

    def add_deferred(
        self,
        session: AsyncSession,
        etype: EventType,
        *,
        subject: str,
        data: EventData,
        time: datetime,
        on_error: OnError | None = None,
    ) -> str:
        """As `add`, the row sent with the request's other deferred rows in one statement before
        the commit (shared/kernel/writes.py `defer`): for a request whose record is deferred too."""
        values = self.row(etype, subject=subject, data=data, time=time)
        defer(session, self.table, values, on_error)
        session.info["outbox_written"] = True
        return str(values["id"])

    def row(self, etype: EventType, *, subject: str, data: EventData, time: datetime) -> dict[str, Any]:
        traceparent = current_traceparent()
        event = make_event(etype, source=self.source, subject=subject, data=data, time=time, traceparent=traceparent)
        return {
            "id": event.id,
            "aggregatetype": etype.topic,
            "aggregateid": subject,
            "type": etype.type,
            "payload": event.model_dump(mode="json", exclude_none=True),
            "traceparent": traceparent,
        }

    async def backlog(self, session: AsyncSession) -> tuple[int, float | None]:
        """Unsent rows and the age in seconds of the oldest one."""
        t = self.table
        row = (
            await session.execute(
                select(
                    func.count(),
                    func.extract("epoch", func.now() - func.min(t.c.created_at)),
                ).where(t.c.sent_at.is_(None))
            )
        ).one()
        return int(row[0]), (float(row[1]) if row[1] is not None else None)


class OutboxRelay:
    """Publishes the outbox to Kafka (acks=all), retrying with backoff.

    Replicas may run side by side: rows are claimed with FOR UPDATE SKIP LOCKED, and a
    transaction-level advisory lock lets one relay publish at a time, so that a child's
    events cannot overtake each other between two replicas.
    """

    def __init__(
        self,
        outbox: Outbox,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        lock_name: str,
        metrics: Any = None,  # shared.web.metrics.Metrics (the bus does not import the web layer)
    ) -> None:
        self.outbox = outbox
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.lock_key = zlib.crc32(f"obruten-outbox:{lock_name}".encode())
        self.wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._topics_ready = False
        self.published = 0
        self.failures = 0
        self.metrics = metrics
        # The last batch found another replica's relay publishing (the advisory lock taken).
        self.lock_busy = False

    async def _get_producer(self) -> AIOKafkaProducer:
        # Bounded: aiokafka's bootstrap can wait a long time for a broker that is down.
        timeout = self.settings.kafka_request_timeout_ms / 1000 + 1
        if not self._topics_ready:
            await within(ensure_topics(self.settings, TOPICS), timeout, "ensuring the topics")
            self._topics_ready = True
        if self._producer is None:
            producer = make_producer(self.settings)
            try:
                await within(producer.start(), timeout, "starting the producer")
            except BaseException:
                await stop_within(producer, 5)
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        # A broker that comes back may have lost its topics (the embedded one keeps them
        # in memory), so check them again before the next publish.
        self._topics_ready = False
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_within(producer, 5)

    async def _send(self, producer: AIOKafkaProducer, rows: Sequence[Any]) -> list[Any]:
        futures = []
        for row in rows:
            topic = self.settings.topic(row.aggregatetype)
            # A short producer span in the writer's trace: the hop from the outbox to the topic.
            with continuing(
                f"{topic} publish", row.traceparent, kind=SpanKind.PRODUCER, **{"messaging.system": "kafka"}
            ):
                headers = [("content-type", b"application/cloudevents+json")]
                if row.traceparent:
                    headers.append(("traceparent", row.traceparent.encode()))
                futures.append(
                    await producer.send(
                        topic,
                        value=json.dumps(row.payload, separators=(",", ":")).encode(),
                        key=row.aggregateid.encode(),
                        headers=headers,
                    )
                )
        return list(await asyncio.gather(*futures, return_exceptions=True))

    async def publish_batch(self) -> int:
        """Publish one batch of unsent rows; returns how many were marked sent."""
        t = self.outbox.table
        async with self.sessionmaker() as session, session.begin():
            self.lock_busy = not await session.scalar(select(func.pg_try_advisory_xact_lock(self.lock_key)))
            if self.lock_busy:
                return 0
            rows = (
                await session.execute(
                    select(t.c.seq, t.c.aggregatetype, t.c.aggregateid, t.c.type, t.c.payload, t.c.traceparent)
                    .where(t.c.sent_at.is_(None))
                    .order_by(t.c.seq)
                    .limit(self.settings.outbox_batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            try:
                producer = await self._get_producer()
                # Bounded as a whole: aiokafka keeps retrying a batch while the broker is
                # unreachable, and `send` itself waits for topic metadata, which after a broker
                # restart can wait for good. The relay then drops the connection and starts afresh.
                results = await within(
                    self._send(producer, rows), self.settings.kafka_request_timeout_ms / 1000 + 1, "publishing a batch"
                )
            except Exception as exc:
                await self._drop_producer()
                await session.execute(
                    update(t)
                    .where(t.c.seq.in_([r.seq for r in rows]))
                    .values(attempts=t.c.attempts + 1, last_error=type(exc).__name__)
                )
                raise
            sent = [r.seq for r, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)]
            failed = [r.seq for r, res in zip(rows, results, strict=True) if isinstance(res, BaseException)]
            # Rows the broker acknowledged are marked sent even when others failed, so a
            # retry republishes only what did not arrive.
            if sent:
                await session.execute(update(t).where(t.c.seq.in_(sent)).values(sent_at=func.now()))
            if failed:
                await session.execute(
                    update(t).where(t.c.seq.in_(failed)).values(attempts=t.c.attempts + 1, last_error="publish failed")
                )
        self.published += len(sent)
        if self.metrics is not None:
            self.metrics.outbox_published.inc(len(sent))
        if failed:
            await self._drop_producer()
            raise RuntimeError(f"{len(failed)} outbox rows not acknowledged by the broker")
        return len(sent)

    async def run(self) -> None:
        """Publishes whenever woken: every writer's commit hook sets `wake` (shared/web/app.py), so
        an event leaves as soon as its transaction commits. The poll interval is only the safety
        net for rows committed where no hook runs (another process); another replica holding the
        lock is retried shortly, since its batch may have been read before our rows committed."""
        backoff = 0.5
        while True:
            # Cleared before publishing rather than after the wait: a commit while a batch is out
            # sets it again, and the next round starts at once instead of after the poll interval.
            self.wake.clear()
            try:
                while await self.publish_batch():
                    pass
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the relay must outlive any outage
                self.failures += 1
                if self.metrics is not None:
                    self.metrics.outbox_publish_failures.inc()
                log.warning("outbox relay failed; retrying", extra={"error": repr(exc), "retry_in": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if self.lock_busy:
                await asyncio.sleep(LOCK_RETRY_SECONDS)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.outbox_poll_interval_seconds)

    async def close(self) -> None:
        await self._drop_producer()


def add_outbox_traceparent_v2() -> None:
    """Migration step shared by every service's history (each owns its outbox table)."""
    from alembic import op

    op.add_column("outbox", Column("traceparent", Text))


def drop_outbox_traceparent_v2() -> None:
    from alembic import op

    op.drop_column("outbox", "traceparent")
