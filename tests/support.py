"""Helpers the tests share: tokens, a topic tail, waiting for conditions."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kernel.settings import Settings
from shared.web.auth import mint_token

T = TypeVar("T")


class Tokens:
    def __init__(self, private_key: Path, settings: Settings) -> None:
        self.key = private_key.read_bytes()
        self.settings = settings

    def __call__(self, *roles: str, district: str | None = None, subject: str = "test-user", ttl: int = 3600) -> str:
        return mint_token(
            self.key,
            subject=subject,
            roles=list(roles),
            district=district,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            ttl_seconds=ttl,
        )

    def headers(self, *roles: str, district: str | None = None, subject: str = "test-user") -> dict[str, str]:
        return {"Authorization": f"Bearer {self(*roles, district=district, subject=subject)}"}


class TopicTail:
    """A plain aiokafka consumer (no group) reading a topic from where it ended when the
    tail was opened: what a test sees is what the code under test published since."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.consumer: AIOKafkaConsumer | None = None
        self.messages: list[Any] = []

    async def __aenter__(self) -> TopicTail:
        # If the broker ever answers the opening offset as out of range, aiokafka's default
        # ("latest") would jump past whatever was published meanwhile; a test's topics are its
        # own, so their start is the right fallback.
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await self.consumer.start()
        partitions = None
        for _ in range(100):
            partitions = self.consumer.partitions_for_topic(self.topic)
            if partitions:
                break
            await self.consumer._client.force_metadata_update()
            await asyncio.sleep(0.1)
        assert partitions, f"topic {self.topic} does not exist"
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(tps)
        ends = await self.consumer.end_offsets(tps)
        for tp in tps:
            self.consumer.seek(tp, ends[tp])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.consumer is not None
        await self.consumer.stop()

    async def collect(self, count: int, timeout: float = 20.0) -> list[Any]:
        """Wait until at least `count` messages have arrived; returns all so far."""
        assert self.consumer is not None
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            batch = await self.consumer.getmany(timeout_ms=200)
            for records in batch.values():
                self.messages.extend(records)
        return self.messages

    async def settle(self, quiet: float = 1.5) -> list[Any]:
        """Read until nothing more arrives for `quiet` seconds (to prove no duplicates)."""
        assert self.consumer is not None
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            batch = await self.consumer.getmany(timeout_ms=200)
            for records in batch.values():
                if records:
                    self.messages.extend(records)
                    last = time.monotonic()
        return self.messages

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m.value) for m in self.messages]


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 15.0, interval: float = 0.1) -> T:
    """Retry an async check until it returns a truthy value without raising."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"condition still false after {timeout}s: {result!r}")
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)
