"""Event pipeline: events per second from outbox rows to notify's projection, against raw aiokafka
producing and consuming the same number of messages on the same broker, in the same run.

Obruten: `obruten serve placement` (its relay) and `obruten serve notify` (its consumer) run as
processes. N `obruten.placement.started` events are written into placement's outbox in one
transaction; the clock runs from that commit until notify's projection (placement_view) holds all
N. Each event crosses: relay claim (FOR UPDATE SKIP LOCKED) → Kafka (acks=all) → mark sent →
consumer → envelope and data validation → one transaction per partition batch: the batch's inbox
claim and its projection rows, one statement each, then the due index and the evaluation of four
rules for every placement the batch touched → offset commit.

Baselines, in the same run on the same broker and database: one aiokafka producer (acks=all, same
linger) sends the same N payloads and one aiokafka consumer in a group reads them back, nothing
else; and the same with each message decoded into the projection's row and all rows written with
one asyncpg `COPY` into a table of placement_view's shape in notify's database (the target's
baseline: what a consumer that persists must do at the least).

    .venv/bin/python bench/pipeline.py            # print the figures
    .venv/bin/python bench/pipeline.py --write    # and record them in bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Stack, py_spy, recorded, serve, top_frames, verdict, write_section
from shared.bus.kafka import ensure_topics, make_producer
from shared.contracts.envelope import make_event
from shared.contracts.placement import PLACEMENT_STARTED, Duration, PlacementSnapshot
from shared.contracts.topics import TOPICS
from shared.contracts.vocabulary import LegalBasis, PlacementForm
from shared.local.embedded import free_port
from shared.local.migrate import _asyncpg_dsn, prepare_database

HEADING = "## Event pipeline"
LIMITS = """\
What changed (issue 18, second pass, 2026-12-01; 11.5 % before, on a quiet machine):
- The relay (shared/bus/outbox.py): a batch of up to `outbox_batch_size` (1,000, was 200) is three
  statements on a Core connection (the publishing lock and the claim in one, the rows marked sent,
  the commit) where it was five and an empty batch after; the stored payload text is sent as it is
  (no jsonb decode and re-encode); one producer span per batch links the writers' traces. Here the
  rows are written by another connection, which wakes the relay through the outbox's trigger
  (NOTIFY, LISTENed to by shared/kernel/listen.py) instead of its poll interval. In process, the
  relay's CPU per event in batches went from about 0.18 to 0.05 ms.
- Notify's consumer: one `notify process` span per batch linked to every event (a span per event
  cost about 25 us, as much as parsing it), no span per SQL statement inside a batch, the
  evaluation's statements built once with array parameters, the arrival note in the due-row insert,
  the placements and their records read in one statement, the alert lock skipped for pairs whose due
  row the batch itself created (no alert can exist for them), and each rule's unmet result built
  once. Round trips per batch of new placements: 13 before, 9 now. In process, CPU per event at a
  batch of 50: 679 us before, 301 after.
Runs on the merged head: 2,802 events/s (22.2 %) at 15:30 and 2,210 (14.9 %, the table) at 15:55,
both at load average about 1; the baseline moved between 12,611 and 14,825.

What limits it: notify. The outbox now drains in a fraction of the run (0.4-0.6 s of 1.8-2.3 s);
the rest is notify applying and evaluating what arrives, a fetch at a time: per batch a commit, the
inbox claim, the placement and caseworker upserts (the placement upsert binds eleven arrays, and
asyncpg checks each element, about 1.3 us each), and the evaluation of every placement the batch
touched (due rows inserted and locked, facts read, four rules in Python, due times written), which
is about 30 % of notify's samples. The baseline does one `COPY` for all rows and evaluates nothing,
and all of it shares two cores with the broker, PostgreSQL and the relay. What would close more of
the gap, in order of effect: notify's evaluation deferred to the end of a burst (the projection
committed per fetch, placements marked for evaluation and evaluated in larger sets by the schedule
loop), more notify replicas (one partition range each; on more cores than these two), and the
caseworker upsert folded into the placement upsert (one round trip less per batch).
"""
TARGET = 0.50
NO_IDEMPOTENCE = {"OBRUTEN_KAFKA_IDEMPOTENT_PRODUCER": "false"}


def events(n: int) -> list[tuple[str, str, str, str]]:
    start = date.today() - timedelta(days=2)
    rows = []
    for _ in range(n):
        child = uuid.uuid4()
        snap = PlacementSnapshot(
            placement_id=uuid.uuid4(), child_id=child, version=1, district="Farsta", form=PlacementForm.jourhem,
            variants=[], legal_basis=LegalBasis.SoL, duration=Duration.long_term, start_date=start,
            planned_end_date=None, end_date=None, end_reason=None, school_change=True,
            child_birth_date=date(2013, 4, 2), protected_identity=False,
        )  # fmt: skip
        ev = make_event(
            PLACEMENT_STARTED, source="/obruten/placement", subject=str(child), data=snap, time=datetime.now(UTC)
        )
        rows.append((ev.id, str(child), PLACEMENT_STARTED.type, ev.model_dump_json(exclude_none=True)))
    return rows


async def count(url: str, sql: str) -> int:
    conn = await asyncpg.connect(**_asyncpg_dsn(url))  # type: ignore[arg-type]
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def obruten(stack: Stack, rows: list[tuple[str, str, str, str]], spy: Path) -> dict[str, float]:
    placement_url = stack.settings.service_database_url("placement")
    notify_url = stack.settings.service_database_url("notify")
    env = {"OBRUTEN_NOTIFY_TICK_INTERVAL_SECONDS": "3600", **NO_IDEMPOTENCE}
    with (
        serve(stack, "notify", free_port(), **env) as notify,
        serve(stack, "placement", free_port(), **NO_IDEMPOTENCE) as placement,
    ):
        await asyncio.sleep(5)  # the consumer has joined its group
        conn = await asyncpg.connect(**_asyncpg_dsn(placement_url))  # type: ignore[arg-type]
        try:
            async with conn.transaction():
                await conn.executemany(
                    "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) "
                    "VALUES ($1, 'obruten.placement', $2, $3, $4::jsonb)",
                    rows,
                )
            started = time.perf_counter()
        finally:
            await conn.close()
        relayed = None
        seconds = max(5, int(len(rows) / 150))
        with py_spy(notify.pid, seconds, spy):
            while True:
                done = await count(notify_url, "SELECT count(*) FROM placement_view")
                unsent = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
                if relayed is None and await count(placement_url, unsent) == 0:
                    relayed = time.perf_counter() - started
                if done >= len(rows):
                    # Timed here: leaving the py-spy block waits for the profile's full length.
                    elapsed = time.perf_counter() - started
                    break
                await asyncio.sleep(0.1)
        rss = {"placement": placement.rss_mb(), "notify": notify.rss_mb()}
    return {"seconds": elapsed, "relayed": relayed or elapsed, "rate": len(rows) / elapsed, **rss}


async def raw(stack: Stack, rows: list[tuple[str, str, str, str]]) -> dict[str, float]:
    settings = stack.settings.model_copy(update={"kafka_topic_prefix": f"raw{uuid.uuid4().hex[:6]}."})
    await ensure_topics(settings, TOPICS)
    topic = settings.topic("obruten.placement")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_servers(), group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest", session_timeout_ms=10_000,
    )  # fmt: skip
    await consumer.start()
    producer = make_producer(settings)
    await producer.start()
    try:
        await asyncio.sleep(5)  # the same head start as notify's consumer
        started = time.perf_counter()
        received = 0

        async def consume() -> None:
            nonlocal received
            while received < len(rows):
                batch = await consumer.getmany(timeout_ms=200, max_records=500)
                received += sum(len(r) for r in batch.values())

        reader = asyncio.create_task(consume())
        futures = [await producer.send(topic, value=payload.encode(), key=key.encode()) for _, key, _, payload in rows]
        await asyncio.gather(*futures)
        await reader
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()
    return {"seconds": elapsed, "rate": len(rows) / elapsed}


COPY_COLUMNS = [
    "placement_id", "child_id", "version", "district", "form", "start_date", "end_date", "end_reason",
    "school_change", "child_birth_date", "protected_identity",
]  # fmt: skip


def copy_row(value: bytes) -> tuple[object, ...]:
    """The projection's row of one event, from its JSON: what notify's placement_view stores."""
    d = json.loads(value)["data"]
    day = lambda v: date.fromisoformat(v) if v else None  # noqa: E731
    return (
        uuid.UUID(d["placement_id"]), uuid.UUID(d["child_id"]), d["version"], d["district"], d["form"],
        day(d["start_date"]), day(d.get("end_date")), d.get("end_reason"), d["school_change"],
        day(d["child_birth_date"]), d["protected_identity"],
    )  # fmt: skip


async def raw_copy(stack: Stack, rows: list[tuple[str, str, str, str]]) -> dict[str, float]:
    """The limit for a consumer that persists: the same produce and consume as `raw`, each message's
    JSON decoded into the projection's row, then one asyncpg COPY of all rows into a table of
    placement_view's shape in notify's database (same broker, same database)."""
    settings = stack.settings.model_copy(update={"kafka_topic_prefix": f"copy{uuid.uuid4().hex[:6]}."})
    await ensure_topics(settings, TOPICS)
    topic = settings.topic("obruten.placement")
    table = f"bench_copy_{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(**_asyncpg_dsn(stack.settings.service_database_url("notify")))  # type: ignore[arg-type]
    await conn.execute(f"CREATE TABLE {table} (LIKE placement_view INCLUDING DEFAULTS INCLUDING INDEXES)")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_servers(), group_id=f"copy-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest", session_timeout_ms=10_000,
    )  # fmt: skip
    await consumer.start()
    producer = make_producer(settings)
    await producer.start()
    try:
        await asyncio.sleep(5)  # the same head start as notify's consumer
        started = time.perf_counter()
        decoded: list[tuple[object, ...]] = []

        async def consume() -> None:
            while len(decoded) < len(rows):
                batch = await consumer.getmany(timeout_ms=200, max_records=500)
                decoded.extend(copy_row(r.value) for records in batch.values() for r in records if r.value)

        reader = asyncio.create_task(consume())
        futures = [await producer.send(topic, value=payload.encode(), key=key.encode()) for _, key, _, payload in rows]
        await asyncio.gather(*futures)
        await reader
        await conn.copy_records_to_table(table, records=decoded, columns=COPY_COLUMNS)
        elapsed = time.perf_counter() - started
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == len(rows)
    finally:
        await producer.stop()
        await consumer.stop()
        await conn.execute(f"DROP TABLE {table}")
        await conn.close()
    return {"seconds": elapsed, "rate": len(rows) / elapsed}


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="obruten-bench-") as tmp:
        work = Path(tmp)
        stack = Stack(work)
        # The embedded broker (tansu) lacks the idempotent producer (shared/local/runner.py does the same).
        stack.settings = stack.settings.model_copy(update={"kafka_idempotent_producer": False})
        try:
            for service in ("placement", "notify"):
                await prepare_database(service, stack.settings.service_database_url(service))
            await ensure_topics(stack.settings, TOPICS)
            rows = events(args.events)
            raw_results = [await raw(stack, rows) for _ in range(args.rounds)]
            copy_results = [await raw_copy(stack, rows) for _ in range(args.rounds)]
            ob = await obruten(stack, rows, work / "notify.spy")
            profile = top_frames(work / "notify.spy", 25)
        finally:
            stack.close()
    base = statistics.mean(r["rate"] for r in raw_results)
    persisting = statistics.mean(r["rate"] for r in copy_results)
    ratio = ob["rate"] / persisting
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        HEADING,
        "",
        recorded(f".venv/bin/python bench/pipeline.py --events {args.events} --write"),
        "",
        f"{args.events:,} `obruten.placement.started` events, embedded broker (tansu, memory storage) and embedded "
        f"PostgreSQL; topics with 6 partitions. Load average at the end of the run: {load}.",
        "",
        "| pipeline | events/s | seconds |",
        "|---|---:|---:|",
        f"| Obruten: outbox rows → relay → Kafka → notify's projection | {ob['rate']:.0f} | {ob['seconds']:.1f} "
        f"(outbox drained after {ob['relayed']:.1f}) |",
        f"| raw aiokafka: produce (acks=all) + consume + JSON decode + one asyncpg `COPY` of the rows into a table, "
        f"mean of {args.rounds} | {persisting:.0f} | {statistics.mean(r['seconds'] for r in copy_results):.2f} |",
        f"| raw aiokafka: produce (acks=all) + consume, mean of {args.rounds} | {base:.0f} | "
        f"{statistics.mean(r['seconds'] for r in raw_results):.2f} |",
        "",
        f"**Ratio: {100 * ratio:.1f} % of raw aiokafka + COPY (target ≥ {100 * TARGET:.0f} %): "
        f"{verdict(ratio >= TARGET)}.** ({100 * ob['rate'] / base:.1f} % of bare raw aiokafka.)",
        "",
        f"Resident memory at the end of the run: placement {ob['placement']:.0f} MB, notify {ob['notify']:.0f} MB.",
        "",
        "Where notify's time goes while it consumes (py-spy, share of samples with the function on the stack):",
        "",
        "```",
        *[f"{share:5.1f} %  {name}" for name, share in profile],
        "```",
        "",
        LIMITS,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the raw baseline")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    section = asyncio.run(run(args))
    print(section)
    if args.write:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
