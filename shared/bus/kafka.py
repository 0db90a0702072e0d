"""Kafka clients configured one way for every service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from shared.kernel.settings import Settings

log = logging.getLogger("obruten.kafka")
T = TypeVar("T")


def client_options(settings: Settings) -> dict[str, Any]:
    """Where the broker is and how to authenticate to it: every producer, consumer and admin
    client of every service is built with these (shared/kernel/settings.py, kafka_security_protocol)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_servers(),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
            certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
            keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    if settings.kafka_security_protocol.startswith("SASL"):
        password = settings.kafka_sasl_password
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


def make_producer(settings: Settings) -> AIOKafkaProducer:
    # acks="all": an event counts as published only once every in-sync replica has it.
    # The idempotent producer (no duplicates from the producer's own retries) is on for Apache
    # Kafka and off only for the embedded broker, which lacks it (`obruten run` and the tests
    # set OBRUTEN_KAFKA_IDEMPOTENT_PRODUCER=false); the consumers' inbox absorbs duplicates either way.
    return AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=settings.kafka_idempotent_producer,
        # Sent at once: the relay hands a whole batch over before it yields, so the batch still
        # leaves as one request, and a lone event (an alert) waits for nothing.
        linger_ms=0,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        retry_backoff_ms=200,
    )


def consumer_options(settings: Settings, group_id: str) -> dict[str, Any]:
    """What every consumer group member is started with (the consumers, `obruten replay`)."""
    return {
        **client_options(settings),
        "group_id": group_id,
        # By hand, after the effect's transaction: auto-commit would make delivery at most once.
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_interval_ms": 300_000,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": max(settings.kafka_session_timeout_ms // 4, 100),
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }


async def ensure_topics(settings: Settings, topics: Iterable[str]) -> None:
    """Create the (prefixed) topics that do not exist yet; production brokers often
    disable auto-creation."""
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=settings.kafka_request_timeout_ms)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [settings.topic(t) for t in topics if settings.topic(t) not in existing]
        if not missing:
            return
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        t,
                        num_partitions=settings.kafka_topic_partitions,
                        replication_factor=settings.kafka_replication_factor,
                    )
                    for t in missing
                ]
            )
        except TopicAlreadyExistsError:
            pass  # another service created it first
        log.info("topics created", extra={"topics": missing})
    finally:
        # Bounded: closing a half-bootstrapped client can hang on a broker coming back.
        with contextlib.suppress(TimeoutError):
            await within(admin.close(), 5, "closing the admin client", finish=True)


async def within(work: Awaitable[T], seconds: float, what: str, *, finish: bool = False) -> T:
    """Await `work` for at most `seconds`, else raise TimeoutError.

    Unlike asyncio.wait_for, a timeout (or the caller's own cancellation) does not wait for the
    cancelled work to unwind: aiokafka's cleanup of a client that was still connecting can
    itself wait on the broker indefinitely, and would hold the caller (the relay, shutdown)
    with it. Abandoned work is cancelled, or with `finish` (a client's stop or close, which
    should complete if it can) left to finish in the background.
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        _abandon(task, cancel=not finish)
        raise
    if not done:
        _abandon(task, cancel=not finish)
        log.warning("kafka call did not finish in time; left behind", extra={"what": what, "seconds": seconds})
        raise TimeoutError(f"{what} took longer than {seconds} s")
    return task.result()


def _abandon(task: asyncio.Future[T], *, cancel: bool) -> None:
    if cancel:
        task.cancel()
    # Retrieve its outcome so asyncio does not log "exception was never retrieved".
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


async def stop_within(client: AIOKafkaProducer | AIOKafkaConsumer, seconds: float) -> None:
    """Stop a Kafka client, waiting at most `seconds`.

    asyncio.wait_for would cancel a slow stop() and then wait for the cancellation to
    finish, which aiokafka's group coordinator can hold up (a consumer still joining its
    group); here the stop goes on in the background and shutdown does not wait for it.
    """
    try:
        await within(client.stop(), seconds, f"stopping the {type(client).__name__}", finish=True)
    except TimeoutError:
        pass


class Generations(ConsumerRebalanceListener):  # type: ignore[misc]
    """Counts the consumer's assignments, so a batch fetched under an earlier one is not committed."""

    def __init__(self) -> None:
        self.count = 0

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.count += 1

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.count += 1


Position = tuple[str, int, int]


def position(record: ConsumerRecord[bytes, bytes]) -> Position:
    """Where a record stands: a batch holds several partitions, whose offsets overlap."""
    return (record.topic, record.partition, record.offset)
