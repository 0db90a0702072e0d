"""Event pipeline: events per second from outbox rows to notify's projection, against raw aiokafka
producing and consuming the same number of messages on the same broker, in the same run.

Obruten: `obruten serve placement` (its relay) and `obruten serve notify` (its consumer) run as
processes. N `obruten.placement.started` events are written into placement's outbox in one
transaction; the clock runs from that commit until notify's projection (placement_view) holds all
N. Each event crosses: relay claim (FOR UPDATE SKIP LOCKED) → Kafka (acks=all) → mark sent →
consumer → envelope and data validation → inbox claim + projection upsert + due index +
evaluation of four rules, one transaction per event → offset commit.

Baseline: one aiokafka producer (acks=all, same linger) sends the same N payloads and one
aiokafka consumer in a group reads them back, nothing else.

    .venv/bin/python bench/pipeline.py            # print the figures
    .venv/bin/python bench/pipeline.py --write    # and record them in bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
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
from services.placement.events import PLACEMENT_STARTED, Duration, PlacementSnapshot
from shared.embedded import free_port
from shared.events import TOPICS, make_event
from shared.kafka import ensure_topics, make_producer
from shared.migrate import _asyncpg_dsn, prepare_database
from shared.vocabulary import LegalBasis, PlacementForm

HEADING = "## Event pipeline"
LIMITS = """\
What changed since the figures under "Before the performance work": the consumer applies each
partition batch (up to 500 events) in one transaction with a SAVEPOINT per event and one offset
commit after the batch's commit (an event that raises PoisonEvent or a data error, SQLSTATE 22 or
23, loses only its savepoint and is dead-lettered after the commit; any other failure rolls back
the batch, which is retried whole). Per event notify no longer looks the placement up before
creating its due rows (one `INSERT … SELECT` from the projection) and reads school attendances,
plans and examinations in one `UNION ALL` instead of three selects.

What limits it. Notify's consumer, CPU-bound: 10 statements per `placement.started` event (counted
with a `before_cursor_execute` listener: SAVEPOINT, inbox claim, projection upsert, due-index insert,
due-index lock, placement, facts, alerts lock, due-time update, RELEASE), each about 1 ms of Python
on this machine: cProfile puts the largest shares in socket sends to PostgreSQL (about 0.13 ms each
on this VM), SQLAlchemy's statement construction (`coercions.expect`, 58,000 calls for 400 events)
and cache-key generation, then asyncpg. The commit per event is gone, so what remains scales with
statements, not with fsyncs. Raw aiokafka does no database work at all; no per-event consumer
reaches half of it. Next steps, in order of effect: evaluate the batch's placements together after
applying its projections (one facts load and one alerts lock per batch instead of per event: about
half the statements; it collapses transitions within a batch, e.g. an alert opened and resolved by
two events of one batch would never be announced, so it is a product decision); prebuilt statements
with bind parameters instead of building them per event; skip the savepoints and fall back to them
only when a batch fails (two statements per event).
"""
TARGET = 0.50


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
    env = {"OBRUTEN_NOTIFY_TICK_INTERVAL_SECONDS": "3600"}
    with (
        serve(stack, "notify", free_port(), **env) as notify,
        serve(stack, "placement", free_port()) as placement,
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
                    break
                await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
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


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="obruten-bench-") as tmp:
        work = Path(tmp)
        stack = Stack(work)
        try:
            for service in ("placement", "notify"):
                await prepare_database(service, stack.settings.service_database_url(service))
            await ensure_topics(stack.settings, TOPICS)
            rows = events(args.events)
            raw_results = [await raw(stack, rows) for _ in range(args.rounds)]
            ob = await obruten(stack, rows, work / "notify.spy")
            profile = top_frames(work / "notify.spy", 25)
        finally:
            stack.close()
    base = statistics.mean(r["rate"] for r in raw_results)
    ratio = ob["rate"] / base
    lines = [
        HEADING,
        "",
        recorded(f".venv/bin/python bench/pipeline.py --events {args.events} --write"),
        "",
        f"{args.events:,} `obruten.placement.started` events, embedded broker (tansu, memory storage) and embedded "
        "PostgreSQL; topics with 6 partitions.",
        "",
        "| pipeline | events/s | seconds |",
        "|---|---:|---:|",
        f"| Obruten: outbox rows → relay → Kafka → notify's projection | {ob['rate']:.0f} | {ob['seconds']:.1f} "
        f"(outbox drained after {ob['relayed']:.1f}) |",
        f"| raw aiokafka: produce (acks=all) + consume, mean of {args.rounds} | {base:.0f} | "
        f"{statistics.mean(r['seconds'] for r in raw_results):.2f} |",
        "",
        f"**Ratio: {100 * ratio:.1f} % of raw aiokafka (target ≥ {100 * TARGET:.0f} %): {verdict(ratio >= TARGET)}.**",
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
