"""What the notify tests share: publishing the other services' events straight onto the topics
(exactly what their relays publish), a tiny webhook receiver, and reading notify's state."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared.bus.kafka import make_producer
from shared.contracts.envelope import CloudEvent, EventData, EventType, make_event
from shared.contracts.health import EXAM_COMPLETED, ExaminationEvent, ExamKind, ExamStatus
from shared.contracts.placement import PLACEMENT_ENDED, PLACEMENT_STARTED, Duration, EndReason, PlacementSnapshot
from shared.contracts.school import (
    SCHOOL_ENDED,
    SCHOOL_PLAN_REGISTERED,
    SCHOOL_STARTED,
    Provision,
    SchoolEnded,
    SchoolEndReason,
    SchoolPlanRegistered,
    SchoolStarted,
)
from shared.contracts.vocabulary import LegalBasis, PlacementForm
from shared.kernel.settings import Settings
from tests.support import eventually

SOURCES = {
    "obruten.placement": "/obruten/placement",
    "obruten.school": "/obruten/school",
    "obruten.health": "/obruten/health",
}


class Case:
    """One child's placement and the events about it."""

    def __init__(
        self,
        start: date,
        *,
        form: str = "jourhem",  # no school plan rule: school_gap alone in the first weeks
        district: str = "Farsta",
        school_change: bool = True,
        birth: date = date(2013, 4, 2),
    ) -> None:
        self.child_id = uuid.uuid4()
        self.placement_id = uuid.uuid4()
        self.start = start
        self.form = form
        self.district = district
        self.school_change = school_change
        self.birth = birth
        self.version = 0
        self.school_start_id = uuid.uuid4()

    def snapshot(self, *, end: date | None = None) -> PlacementSnapshot:
        self.version += 1
        return PlacementSnapshot(
            placement_id=self.placement_id,
            child_id=self.child_id,
            version=self.version,
            district=self.district,
            form=PlacementForm(self.form),
            variants=[],
            legal_basis=LegalBasis.SoL,
            duration=Duration.long_term,
            start_date=self.start,
            planned_end_date=None,
            end_date=end,
            end_reason=EndReason.moved if end else None,
            school_change=self.school_change,
            child_birth_date=self.birth,
            protected_identity=False,
        )

    def school_started(self, on: date) -> SchoolStarted:
        return SchoolStarted(
            school_start_id=self.school_start_id,
            placement_id=self.placement_id,
            child_id=self.child_id,
            district=self.district,
            start_date=on,
            provision=Provision.school_unit,
            school_unit_code="12345678",
            placement_start_date=self.start,
            school_change=self.school_change,
            days_to_school_start=(on - self.start).days,
        )

    def school_ended(self, on: date) -> SchoolEnded:
        return SchoolEnded(
            school_start_id=self.school_start_id,
            placement_id=self.placement_id,
            child_id=self.child_id,
            district=self.district,
            end_date=on,
            reason=SchoolEndReason.moved,
        )

    def plan(self, on: date) -> SchoolPlanRegistered:
        return SchoolPlanRegistered(
            plan_id=uuid.uuid4(),
            placement_id=self.placement_id,
            child_id=self.child_id,
            district=self.district,
            drawn_up_on=on,
        )

    def exam(self, kind: str, on: date) -> ExaminationEvent:
        return ExaminationEvent(
            examination_id=uuid.uuid4(),
            placement_id=self.placement_id,
            child_id=self.child_id,
            district=self.district,
            kind=ExamKind(kind),
            status=ExamStatus.completed,
            date=on,
        )


class Bus:
    """Publishes CloudEvents onto the (prefixed) topics, keyed by the child id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer: AIOKafkaProducer = make_producer(settings)
        self.sent = 0

    async def __aenter__(self) -> Bus:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    def event(self, etype: EventType, data: EventData) -> CloudEvent:
        child_id = str(data.child_id)  # type: ignore[attr-defined]
        return make_event(etype, source=SOURCES[etype.topic], subject=child_id, data=data, time=datetime.now(UTC))

    async def send(self, etype: EventType, event: CloudEvent) -> CloudEvent:
        assert event.subject
        await self.producer.send_and_wait(
            self.settings.topic(etype.topic), value=event.model_dump_json().encode(), key=event.subject.encode()
        )
        self.sent += 1
        return event

    async def publish(self, etype: EventType, data: EventData) -> CloudEvent:
        return await self.send(etype, self.event(etype, data))

    async def placement(self, case: Case) -> CloudEvent:
        return await self.publish(PLACEMENT_STARTED, case.snapshot())

    async def placement_ended(self, case: Case, on: date) -> CloudEvent:
        return await self.publish(PLACEMENT_ENDED, case.snapshot(end=on))

    async def school_started(self, case: Case, on: date) -> CloudEvent:
        return await self.publish(SCHOOL_STARTED, case.school_started(on))

    async def school_ended(self, case: Case, on: date) -> CloudEvent:
        return await self.publish(SCHOOL_ENDED, case.school_ended(on))

    async def plan(self, case: Case, on: date) -> CloudEvent:
        return await self.publish(SCHOOL_PLAN_REGISTERED, case.plan(on))

    async def exam(self, case: Case, kind: str, on: date) -> CloudEvent:
        return await self.publish(EXAM_COMPLETED, case.exam(kind, on))


def processed(*clients: httpx.AsyncClient) -> int:
    return sum(c.app.state.consumers[0].processed for c in clients)  # type: ignore[attr-defined]


async def consumed(count: int, *clients: httpx.AsyncClient, timeout: float = 20.0) -> None:
    """Wait until the notify consumers have applied (or absorbed) `count` events."""

    async def check() -> bool:
        return processed(*clients) >= count

    await eventually(check, timeout=timeout, interval=0.05)


async def alerts(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    resp = await client.get("/v1/alerts", params={k: str(v) for k, v in params.items()})
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


class Receiver:
    """A tiny real HTTP/1.1 server on 127.0.0.1 that answers 500 to the first `fail_first`
    requests and 200 after, recording every request."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> Receiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((headers, body))
                code = 500 if len(self.requests) <= self.fail_first else 200
                writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
