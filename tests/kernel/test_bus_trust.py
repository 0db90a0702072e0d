"""The bus (issue 12, finding 9): a consumer accepts an event only from the producer that owns
its topic; a forged one is dead-lettered with the reason and counted, and changes nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

from shared.contracts.envelope import make_event
from shared.contracts.placement import PLACEMENT_CHANGED, PLACEMENT_STARTED
from shared.contracts.topics import TOPIC_DEADLETTER
from shared.kernel.settings import Settings
from shared.web.runtime import runtime
from tests.fixtures.support import TopicTail, eventually
from tests.school.test_school import _connect, produce, snapshot


def forged(source: str, placement_id: uuid.UUID, child_id: uuid.UUID, clock: Any, *, version: int) -> bytes:
    data = snapshot(placement_id, child_id, version=version, protected_identity=False)
    event = make_event(PLACEMENT_CHANGED, source=source, subject=str(child_id), data=data, time=clock.now())
    return json.dumps(event.model_dump(mode="json", exclude_none=True)).encode()


async def protected_flags(settings: Settings) -> list[bool]:
    conn = await _connect(settings)
    try:
        return [r["protected_identity"] for r in await conn.fetch("SELECT protected_identity FROM placement_view")]
    finally:
        await conn.close()


async def test_an_event_from_another_source_on_the_placement_topic_is_parked_and_changes_nothing(
    service_client: Any, settings: Settings, clock: Any
) -> None:
    placement_id, child_id = uuid.uuid4(), uuid.uuid4()
    genuine = snapshot(placement_id, child_id, version=1, protected_identity=True)
    started = make_event(
        PLACEMENT_STARTED, source="/obruten/placement", subject=str(child_id), data=genuine, time=clock.now()
    )
    genuine_bytes = json.dumps(started.model_dump(mode="json", exclude_none=True)).encode()
    fakes = [
        forged("/obruten/school", placement_id, child_id, clock, version=99),
        forged("/evil", placement_id, child_id, clock, version=100),
    ]
    async with (
        TopicTail(settings.kafka_servers(), settings.topic(TOPIC_DEADLETTER)) as dead,
        service_client("school") as school,
    ):
        consumer = runtime(school.app).consumers[0]
        await produce(settings, child_id, genuine_bytes, *fakes)

        async def parked() -> bool:
            return consumer.dead_lettered >= 2 and consumer.processed >= 1

        await eventually(parked, timeout=20)
        await dead.collect(2)
    assert consumer.foreign == 2, "counted"
    assert await protected_flags(settings) == [True], "the forged version 99/100 did not lift protection"
    reasons = [dict(m.headers)["obruten-reason"].decode() for m in dead.messages]
    assert len(reasons) == 2 and all("does not own topic obruten.placement" in r for r in reasons), reasons
    assert [m.value for m in dead.messages] == fakes
