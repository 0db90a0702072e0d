"""Protected identity: a child with protected identity placed in protected housing. Its location
and school unit are planted as unique strings; the roles the policy grants them read them through
the API, and no topic, webhook delivery, alert, report or log line carries them (nor the child's
personnummer)."""

from __future__ import annotations

import logging
import random
import time
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from pythonjsonlogger.json import JsonFormatter

from services.notify.app import evaluate
from shared.kernel.clock import FixedClock
from shared.kernel.settings import Settings
from shared.local.migrate import _asyncpg_dsn
from tests.fixtures.factories import child_body, placement_body
from tests.fixtures.support import eventually


class Captured(logging.Handler):
    """Every log record as the JSON line the services write, extras included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def every_message(settings: Settings) -> list[bytes]:
    """Every message of every topic of this test (its prefix), from the beginning."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_servers(), enable_auto_commit=False)
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if t.startswith(settings.kafka_topic_prefix))
        assert topics, "the test's topics"
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[bytes] = []
        deadline = time.monotonic() + 20
        while len(out) < sum(ends.values()) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                out.extend((r.key or b"") + b" " + (r.value or b"") for r in records)
        assert len(out) >= sum(ends.values())
        return out
    finally:
        await consumer.stop()


async def webhook_bodies(settings: Settings) -> list[str]:
    conn = await asyncpg.connect(**_asyncpg_dsn(settings.service_database_url("notify")))  # type: ignore[arg-type]
    try:
        return [r["body"] for r in await conn.fetch("SELECT body FROM webhook_delivery")]
    finally:
        await conn.close()


async def test_a_protected_childs_location_and_school_unit_reach_only_the_granted_roles(
    live_service: Any, service_client: Any, settings: Settings, tokens: Any, clock: FixedClock
) -> None:
    location = f"Skyddat boende Planterad-{uuid.uuid4().hex}"
    school_unit = f"{random.randrange(10**7, 10**8)}"
    captured = Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(captured)
    root.setLevel(logging.INFO)
    today = clock.today()
    try:
        async with (
            live_service("placement") as url,
            httpx.AsyncClient(base_url=url, headers=tokens.headers("admin")) as placement,
            service_client("school", settings_override={"placement_url": url}) as school,
            service_client("notify") as notify,
        ):
            hook = await notify.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "secret": "s" * 20})
            assert hook.status_code == 201, hook.text
            body = child_body(7, protected=True)
            child = (await placement.post("/v1/children", json=body)).json()["id"]
            resp = await placement.post(
                "/v1/placements",
                json=placement_body(
                    child,
                    start=today - timedelta(days=40),
                    form="skyddat_boende",
                    location=location,
                    caseworker="cw-responsible",
                ),
            )
            assert resp.status_code == 201, resp.text
            pid = resp.json()["id"]
            assert resp.json()["location"] == location, "the administrator who recorded it"

            teaching = tokens.headers("protected_teaching", subject="larteamet-1")
            start = await school.post(
                "/v1/school-starts",
                json={
                    "placement_id": pid,
                    "start_date": str(today - timedelta(days=2)),
                    "school_unit_code": school_unit,
                },
                headers=teaching,
            )
            assert start.status_code == 201, start.text
            assert start.json()["school_unit_code"] == school_unit
            start_id = start.json()["id"]

            # Location: the administrator, the district manager and the caseworker named on the
            # placement; not another caseworker of the same district.
            async def location_as(headers: dict[str, str]) -> Any:
                got = await placement.get(f"/v1/placements/{pid}", headers=headers)
                assert got.status_code == 200, got.text
                listed = (await placement.get("/v1/placements", headers=headers)).json()["items"]
                assert [p["location"] for p in listed if p["id"] == pid] == [got.json()["location"]]
                return got.json()["location"]

            assert await location_as(tokens.headers("admin")) == location
            assert await location_as(tokens.headers("district_manager", district="Farsta")) == location
            responsible = tokens.headers("caseworker", district="Farsta", subject="cw-responsible")
            assert await location_as(responsible) == location
            assert await location_as(tokens.headers("caseworker", district="Farsta", subject="cw-other")) is None

            # School unit: the teaching team and the administrator; nobody else.
            async def unit_as(headers: dict[str, str]) -> Any:
                got = await school.get(f"/v1/school-starts/{start_id}", headers=headers)
                assert got.status_code == 200, got.text
                schooling = (await school.get(f"/v1/placements/{pid}/schooling", headers=headers)).json()
                listed = (await school.get("/v1/school-starts", headers=headers)).json()["items"]
                assert [s["school_unit_code"] for s in schooling["starts"]] == [got.json()["school_unit_code"]]
                assert [s["school_unit_code"] for s in listed] == [got.json()["school_unit_code"]]
                return got.json()["school_unit_code"]

            assert await unit_as(teaching) == school_unit
            assert await unit_as(tokens.headers("admin")) == school_unit
            for role in ("school_coordinator", "caseworker", "district_manager"):
                assert await unit_as(tokens.headers(role, district="Farsta", subject="cw-responsible")) is None, role

            # Notify raises alerts about the child (no health examination in 40 days) and sends them.
            async def raised() -> list[dict[str, Any]]:
                await evaluate(notify.app)  # type: ignore[attr-defined]
                items: list[dict[str, Any]] = (await notify.get("/v1/alerts")).json()["items"]
                return items if len(items) >= 2 else []

            alerts = await eventually(raised, timeout=30)
            assert {a["placement_id"] for a in alerts} == {pid}
            deliveries = await eventually(lambda: webhook_bodies(settings))
            report = await placement.get(
                "/v1/reports/placements", params={"from": str(today - timedelta(days=60)), "to": str(today)}
            )
            report_csv = await placement.get(
                "/v1/reports/placements",
                params={"from": str(today - timedelta(days=60)), "to": str(today)},
                headers={"Accept": "text/csv"},
            )
            assert report.status_code == report_csv.status_code == 200

            async def published() -> list[bytes]:
                # Until notify's relay has published the alert events too.
                found = await every_message(settings)
                return found if any(b"/obruten/notify" in m for m in found) else []

            messages = await eventually(published, timeout=30)
    finally:
        root.removeHandler(captured)
        root.setLevel(level)

    pnr = body["personnummer"]
    secrets = {
        "location": location,
        "location (unique part)": location.rsplit("-", 1)[1],
        "school unit": school_unit,
        "personnummer": pnr,
        "personnummer (digits)": pnr.replace("-", ""),
        "personnummer (10 digits)": pnr.replace("-", "")[2:],
    }
    haystacks = {
        "topics": b"\n".join(messages).decode("utf-8", "replace"),
        "webhook deliveries": "\n".join(deliveries),
        "alerts": str(alerts),
        "report": report.text + report_csv.text,
        "logs": "\n".join(captured.lines),
    }
    assert len(messages) >= 4, "placement, school and alert events were published"
    assert any(pid in m.decode() for m in messages)
    assert captured.lines, "the services logged"
    leaks = [f"{what} in {where}" for what, s in secrets.items() for where, text in haystacks.items() if s in text]
    assert not leaks, leaks
