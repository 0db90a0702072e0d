"""Alert latency: from the moment a deadline passes to `obruten.alert.opened` on the topic, with
100,000 open placements in notify's tables.

`obruten serve notify` runs as a process with its own tick loop (`--interval` seconds between
evaluation ticks) and its outbox relay. Its tables are filled in bulk with SQL: `--placements`
open placements, each with its four rows in the due index, due days from now. Then `--due` of
them are given a passed school_gap deadline (placed 8 days ago with a school change and no
school start) whose due time falls at a known moment spread over `--spread` seconds from now.
A consumer on the alerts topic stamps each `obruten.alert.opened` as it arrives; the latency is
arrival minus the due time. Expected: at most one interval (waiting for the next tick) plus the
tick, the commit and the relay.

    .venv/bin/python bench/alert_latency.py            # print the figures
    .venv/bin/python bench/alert_latency.py --write    # and record them in bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Stack, recorded, serve, verdict, write_section
from shared.bus.kafka import ensure_topics
from shared.contracts.alerts import RULE_NAMES
from shared.contracts.topics import TOPIC_ALERTS, TOPICS
from shared.kernel.settings import STOCKHOLM_DISTRICTS
from shared.local.embedded import free_port
from shared.local.migrate import _asyncpg_dsn, prepare_database

HEADING = "## Alert latency"
SLACK = 2.0  # seconds allowed after the evaluation interval

SEED = """
INSERT INTO placement_view (placement_id, child_id, version, district, form, start_date, school_change,
                            child_birth_date, protected_identity)
SELECT gen_random_uuid(), gen_random_uuid(), 1, ($1::text[])[1 + i % cardinality($1::text[])], 'jourhem',
       CASE WHEN i <= $2 THEN $3::date - 8 ELSE $3::date - 2 END, true, DATE '2013-04-02', false
FROM generate_series(1, $4) AS i
"""
# Not-yet-due placements are looked at again in days; the due ones get their moment below.
SEED_DUE = """
INSERT INTO alert_due (placement_id, rule, due_at)
SELECT p.placement_id, r.rule, now() + interval '3 days'
FROM placement_view p CROSS JOIN unnest($1::text[]) AS r(rule)
"""
DUE_PLACEMENTS = "SELECT placement_id FROM placement_view WHERE start_date = $1::date - 8 ORDER BY placement_id"
SET_DUE = "UPDATE alert_due SET due_at = $2 WHERE placement_id = $1 AND rule = 'school_gap'"


async def seed(url: str, placements: int, due: int, spread: float, lead: float) -> dict[str, float]:
    """Fill the tables; returns each due placement's due time (epoch seconds)."""
    today = datetime.now(UTC).date()
    conn = await asyncpg.connect(**_asyncpg_dsn(url))  # type: ignore[arg-type]
    try:
        await conn.execute(SEED, list(STOCKHOLM_DISTRICTS), due, today, placements)
        await conn.execute(SEED_DUE, list(RULE_NAMES))
        await conn.execute("VACUUM ANALYZE")
        ids = [row["placement_id"] for row in await conn.fetch(DUE_PLACEMENTS, today)]
        start = time.time() + lead
        moments = {str(pid): start + spread * i / max(len(ids) - 1, 1) for i, pid in enumerate(ids)}
        due_rows = [(uuid.UUID(pid), datetime.fromtimestamp(t, UTC)) for pid, t in moments.items()]
        await conn.executemany(SET_DUE, due_rows)
    finally:
        await conn.close()
    return moments


async def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="obruten-bench-") as tmp:
        work = Path(tmp)
        stack = Stack(work)
        try:
            url = stack.settings.service_database_url("notify")
            await prepare_database("notify", url)
            await ensure_topics(stack.settings, TOPICS)
            consumer = AIOKafkaConsumer(
                stack.settings.topic(TOPIC_ALERTS), bootstrap_servers=stack.settings.kafka_servers(),
                group_id=f"latency-{uuid.uuid4().hex[:6]}", auto_offset_reset="latest",
            )  # fmt: skip
            await consumer.start()
            try:
                env = {"OBRUTEN_NOTIFY_TICK_INTERVAL_SECONDS": str(args.interval)}
                with serve(stack, "notify", free_port(), **env) as notify:
                    # The consumer holds its partitions before the first deadline passes.
                    await asyncio.sleep(3)
                    print(f"seeding {args.placements:,} placements ...", file=sys.stderr, flush=True)
                    moments = await seed(url, args.placements, args.due, args.spread, args.lead)
                    arrived: dict[str, float] = {}
                    deadline = max(moments.values()) + args.interval + 30
                    rss = notify.rss_mb()
                    while len(arrived) < len(moments) and time.time() < deadline:
                        batch = await consumer.getmany(timeout_ms=200)
                        now = time.time()
                        for records in batch.values():
                            for record in records:
                                event = json.loads(record.value or b"{}")
                                if event.get("type") == "obruten.alert.opened":
                                    arrived.setdefault(event["data"]["placement_id"], now)
                        rss = max(rss, notify.rss_mb())
            finally:
                await consumer.stop()
        finally:
            stack.close()
    latencies = sorted(arrived[pid] - moments[pid] for pid in arrived if pid in moments)
    return {"latencies": latencies, "expected": len(moments), "rss": rss}


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(pct / 100 * (len(values) - 1)))]


def report(res: dict[str, object], args: argparse.Namespace) -> str:
    lat: list[float] = res["latencies"]  # type: ignore[assignment]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    limit = args.interval + SLACK
    complete = len(lat) == res["expected"]
    ok = complete and p99 <= limit
    lines = [
        HEADING,
        "",
        recorded(".venv/bin/python bench/alert_latency.py --write"),
        "",
        f"`obruten serve notify` (own tick loop every {args.interval:g} s, own relay), embedded PostgreSQL and "
        f"broker. {args.placements:,} open placements bulk-inserted into notify's tables (4 due-index rows each); "
        f"{args.due} of them have a passed school_gap deadline whose due time falls at a known moment, spread "
        f"evenly over {args.spread:g} s. Latency: arrival of `obruten.alert.opened` on the topic minus the due "
        "time, in seconds.",
        "",
        "| open placements | deadlines | alerts arrived | p50 (s) | p99 (s) | max (s) | mean (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {args.placements:,} | {res['expected']} | {len(lat)} | {p50:.2f} | {p99:.2f} | "
        f"{(max(lat) if lat else float('nan')):.2f} | {(statistics.mean(lat) if lat else float('nan')):.2f} |",
        "",
        f"**p99 {p99:.2f} s against at most the interval + {SLACK:g} s = {limit:g} s"
        f"{'' if complete else ' (some alerts never arrived)'}: {verdict(ok)}.**",
        "",
        "Most of the latency is the wait for the next tick (uniform over the interval, so the p50 sits near half"
        " of it); the tick, its commit and the relay's publish add the rest. "
        f"Notify's peak resident memory during the run: {res['rss']:.0f} MB.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--placements", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=300)
    parser.add_argument("--interval", type=float, default=10.0, help="notify's tick interval (seconds)")
    parser.add_argument("--spread", type=float, default=40.0, help="seconds over which the deadlines pass")
    parser.add_argument("--lead", type=float, default=5.0, help="seconds from seeding to the first deadline")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    res = asyncio.run(run(args))
    section = report(res, args)
    print(section)
    if args.write:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
