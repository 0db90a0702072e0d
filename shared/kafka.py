"""Kafka clients configured one way for every service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.settings import Settings

log = logging.getLogger("obruten.kafka")


def make_producer(settings: Settings) -> AIOKafkaProducer:
    # acks="all": an event counts as published only once every in-sync replica has it.
    # The idempotent producer is left off because the embedded broker lacks it; duplicates
    # from retries are absorbed by the consumers' inbox (they de-duplicate on event id).
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_servers(),
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        retry_backoff_ms=200,
    )


async def ensure_topics(settings: Settings, topics: Iterable[str]) -> None:
    """Create the (prefixed) topics that do not exist yet; production brokers often
    disable auto-creation."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_servers(), request_timeout_ms=settings.kafka_request_timeout_ms
    )
    await admin.start()
    try:
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
        await admin.close()


async def stop_within(client: AIOKafkaProducer | AIOKafkaConsumer, seconds: float) -> None:
    """Stop a Kafka client, waiting at most `seconds`.

    asyncio.wait_for would cancel a slow stop() and then wait for the cancellation to
    finish, which aiokafka's group coordinator can hold up (a consumer still joining its
    group); here the stop goes on in the background and shutdown does not wait for it.
    """
    task = asyncio.ensure_future(client.stop())
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        log.warning("kafka client did not stop in time; leaving it", extra={"client": type(client).__name__})
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
