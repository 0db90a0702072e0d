"""Transactional outbox: a record and the event announcing it commit in one transaction.

A relay publishes unsent rows to Kafka in order and marks them sent. A broker outage
delays events; it never loses them and never fails the write that produced them.
Columns follow Debezium's outbox conventions (id, aggregatetype, aggregateid, type, payload).
"""

from __future__ import annotations

import asyncio
import contextlib
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
    any_,
    bindparam,
    cast,
    func,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql import Select

from shared.bus.kafka import ensure_topics, make_producer, stop_within, within
from shared.contracts.envelope import EventData, EventType, make_event
from shared.contracts.topics import TOPICS
from shared.kernel.listen import Listener
from shared.kernel.settings import Settings
from shared.kernel.tracing import current_traceparent, publish_span, untraced
from shared.kernel.wake import woken
from shared.kernel.writes import OnError, defer

log = logging.getLogger("obruten.outbox")
# While another replica's relay holds the publishing lock: how soon to try again.
LOCK_RETRY_SECONDS = 0.05
# Under a stream of writes (woken within STREAM_GAP_SECONDS of a round that published), how long
# the relay waits for more commits before its next claim.
LINGER_SECONDS, STREAM_GAP_SECONDS = 0.01, 0.1
CONTENT_TYPE = ("content-type", b"application/cloudevents+json")
# NOTIFYed by the trigger on every service's outbox when a transaction that wrote rows commits
# (add_outbox_notify_v3); each service has a database of its own, so one name serves all.
OUTBOX_CHANNEL = "obruten_outbox"
# "on" for the connections of a process that runs its relay, which its commits wake: its writes skip
# the NOTIFY, which holds PostgreSQL's queue lock to the end of the commit (one such commit at a time).
RELAY_IN_PROCESS = "obruten.relay_in_process"
# How often the relay's listening connection is checked when no notification comes.
LISTENER_KEEPALIVE_SECONDS = 30.0


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
    events cannot overtake each other between two replicas. A batch is four round trips on a
    Core connection: BEGIN, the lock and the claim in one statement, the rows marked sent, COMMIT.
    """

    def __init__(
        self,
        outbox: Outbox,
        engine: AsyncEngine,
        settings: Settings,
        *,
        lock_name: str,
        metrics: Any = None,  # shared.web.metrics.Metrics (the bus does not import the web layer)
    ) -> None:
        self.outbox = outbox
        self.engine = engine
        self.settings = settings
        self.lock_key = zlib.crc32(f"obruten-outbox:{lock_name}".encode())
        self.wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._topics_ready = False
        self.published = 0
        self.failures = 0
        self.rounds = 0  # times it looked at the outbox: woken, or at the poll interval
        self.metrics = metrics
        # The last batch found another replica's relay publishing (the advisory lock taken).
        self.lock_busy = False
        self._claim = claim_statement(outbox.table)
        t = outbox.table
        seqs = t.c.seq == any_(bindparam("seqs", type_=ARRAY(BigInteger)))
        self._mark_sent = update(t).where(seqs).values(sent_at=func.now())
        self._mark_failed = update(t).where(seqs).values(attempts=t.c.attempts + 1, last_error=bindparam("error"))
        # Commits in other processes (another replica, a bulk load) wake the relay through the
        # outbox's trigger; this process's own commits wake it through the commit hook.
        self.listener = Listener(
            engine,
            OUTBOX_CHANNEL,
            lambda _payload: self.wake.set(),
            on_connect=self.wake.set,
            keepalive_seconds=LISTENER_KEEPALIVE_SECONDS,
        )

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
        """Each row's stored payload as it is (jsonb's text is the event's JSON), with its writer's
        traceparent as a header; one producer span for the batch, linked to every writer's trace."""
        topics = {row.aggregatetype for row in rows}
        name = f"{self.settings.topic(next(iter(topics)))} publish" if len(topics) == 1 else "publish"
        attributes = {"messaging.system": "kafka", "messaging.batch.message_count": len(rows)}
        with publish_span(name, [row.traceparent for row in rows], **attributes):
            futures = []
            for row in rows:
                headers = [CONTENT_TYPE]
                if row.traceparent:
                    headers.append(("traceparent", row.traceparent.encode()))
                futures.append(
                    await producer.send(
                        self.settings.topic(row.aggregatetype),
                        value=row.payload.encode(),
                        key=row.aggregateid.encode(),
                        headers=headers,
                    )
                )
            return list(await asyncio.gather(*futures, return_exceptions=True))

    async def publish_batch(self) -> int:
        """Publish one batch of unsent rows; returns how many were marked sent."""
        async with self.engine.begin() as conn:
            claimed = (
                await conn.execute(
                    self._claim, {"lock_key": self.lock_key, "batch_size": self.settings.outbox_batch_size}
                )
            ).all()
            self.lock_busy = not claimed[0].got
            rows = [r for r in claimed if r.seq is not None]
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
                await conn.execute(self._mark_failed, {"seqs": [r.seq for r in rows], "error": type(exc).__name__})
                raise
            sent = [r.seq for r, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)]
            failed = [r.seq for r, res in zip(rows, results, strict=True) if isinstance(res, BaseException)]
            # Rows the broker acknowledged are marked sent even when others failed, so a
            # retry republishes only what did not arrive.
            if sent:
                await conn.execute(self._mark_sent, {"seqs": sent})
            if failed:
                await conn.execute(self._mark_failed, {"seqs": failed, "error": "publish failed"})
        self.published += len(sent)
        if self.metrics is not None:
            self.metrics.outbox_published.inc(len(sent))
        if failed:
            await self._drop_producer()
            raise RuntimeError(f"{len(failed)} outbox rows not acknowledged by the broker")
        return len(sent)

    async def publish_round(self) -> None:
        """Batches until one comes back short of the batch size: what committed after its claim
        has set `wake` (cleared before the round), so an empty batch to make sure would only cost
        statements."""
        self.rounds += 1
        while await self.publish_batch() >= self.settings.outbox_batch_size:
            pass

    async def run(self) -> None:
        """Publishes whenever woken: every writer's commit hook sets `wake` (shared/web/app.py), so
        an event leaves as soon as its transaction commits; a commit in another process wakes it
        through the outbox's trigger (NOTIFY on OUTBOX_CHANNEL, LISTENed to on a connection of its
        own). The poll interval is only the safety net; another replica holding the lock is
        retried shortly, since its batch may have been read before our rows committed."""
        listening = asyncio.create_task(self.listener.run(), name="outbox-listener")
        try:
            # The relay's statements (claims every poll interval, marks) are in no request's trace;
            # its publish span, continuing the writers' traces, is what a trace shows of it.
            with untraced():
                await self._publish_when_woken()
        finally:
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening

    async def _publish_when_woken(self) -> None:
        backoff = 0.5
        while True:
            # Cleared before publishing rather than after the wait: a commit while a batch is out
            # sets it again, and the next round starts at once instead of after the poll interval.
            self.wake.clear()
            published = self.published
            try:
                await self.publish_round()
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
            ended = asyncio.get_running_loop().time()
            if not await woken(self.wake, self.settings.outbox_poll_interval_seconds):
                continue
            # Woken moments after a round that published: writes are streaming in. Lingering a
            # little lets the next claim take several commits' rows, rather than a round of four
            # statements for each; after a quiet spell the first event leaves at once.
            if self.published > published and asyncio.get_running_loop().time() - ended < STREAM_GAP_SECONDS:
                await asyncio.sleep(LINGER_SECONDS)

    async def close(self) -> None:
        await self._drop_producer()


def claim_statement(t: Table) -> Select[Any]:
    """The publishing lock and the batch in one statement: one row with `got` false while another
    relay holds the lock, else `got` true joined to each claimed row (NULL columns when none).
    The payload is read as text, to be sent as it is stored."""
    lock = select(func.pg_try_advisory_xact_lock(bindparam("lock_key", type_=BigInteger)).label("got")).cte(
        "publishing"
    )
    batch = (
        select(t.c.seq, t.c.aggregatetype, t.c.aggregateid, cast(t.c.payload, Text).label("payload"), t.c.traceparent)
        .where(lock.c.got, t.c.sent_at.is_(None))
        .order_by(t.c.seq)
        .limit(bindparam("batch_size", type_=Integer))
        .with_for_update(skip_locked=True)
        .lateral("batch")
    )
    return select(lock.c.got, batch).select_from(lock.outerjoin(batch, true()))
