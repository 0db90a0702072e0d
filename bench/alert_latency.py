"""Alert latency: from the moment a due time passes to `obruten.alert.opened` on the topic, with
1,000,000 open placements in notify's tables.

`obruten serve notify` runs as a process with its own evaluation loop and outbox relay. The loop
sleeps until the earliest due time in the index (at most `--interval`, the cap,
OBRUTEN_NOTIFY_TICK_INTERVAL_SECONDS) and is woken when a write makes an earlier one. Its tables
are filled in bulk with SQL: `--placements` open placements, each with its four rows in the due
index, due days from now. Then `--due` of them are given a passed school_gap deadline (placed 8
days ago with a school change and no school start) whose due time falls at a known moment spread
over `--spread` seconds from now; that transaction ends with `pg_notify`, as a write by another
replica does (notify's own writes also wake it in process). A consumer on the alerts topic stamps
each `obruten.alert.opened` as it arrives; the latency is arrival minus the due time. The event's
own `time` (when notify's evaluation raised it) splits it into the wait for the evaluation and
the way out (commit, relay, broker, the measuring consumer).

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

from bench.common import Stack, load_average, py_spy, recorded, serve, top_frames, verdict, write_section
from services.notify.schedule import CHANNEL
from shared.bus.kafka import ensure_topics
from shared.contracts.alerts import RULE_NAMES
from shared.contracts.topics import TOPIC_ALERTS, TOPICS
from shared.kernel.settings import STOCKHOLM_DISTRICTS
from shared.local.embedded import free_port
from shared.local.migrate import _asyncpg_dsn, prepare_database

HEADING = "## Alert latency"
TARGET_P99 = 1.0  # seconds from a due time passing to the alert on the topic

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
# What another replica's transaction does when it writes a due time earlier than notify sleeps until.
WAKE = "SELECT pg_notify($1, $2)"


async def seed(url: str, placements: int, due: int, spread: float, lead: float) -> dict[str, float]:
    """Fill the tables; returns each due placement's due time (epoch seconds)."""
    today = datetime.now(UTC).date()
    conn = await asyncpg.connect(**_asyncpg_dsn(url))  # type: ignore[arg-type]
    try:
        t0 = time.monotonic()
        await conn.execute(SEED, list(STOCKHOLM_DISTRICTS), due, today, placements)
        await conn.execute(SEED_DUE, list(RULE_NAMES))
        await conn.execute("VACUUM ANALYZE")
        print(f"seeded in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        ids = [row["placement_id"] for row in await conn.fetch(DUE_PLACEMENTS, today)]
        start = time.time() + lead
        moments = {str(pid): start + spread * i / max(len(ids) - 1, 1) for i, pid in enumerate(ids)}
        due_rows = [(uuid.UUID(pid), datetime.fromtimestamp(t, UTC)) for pid, t in moments.items()]
        async with conn.transaction():
            await conn.executemany(SET_DUE, due_rows)
            await conn.execute(WAKE, CHANNEL, min(t for _, t in due_rows).isoformat())
    finally:
        await conn.close()
    return moments


async def run(args: argparse.Namespace) -> dict[str, object]:
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="obruten-bench-") as tmp:
        work = Path(tmp)
        stack = Stack(work)
        try:
            url = stack.settings.service_database_url("notify")
            await prepare_database("notify", url)
            await ensure_topics(stack.settings, TOPICS)
            # The measuring consumer asks often: the embedded broker holds a fetch for its whole
            # wait, which would otherwise be counted as notify's latency.
            consumer = AIOKafkaConsumer(
                stack.settings.topic(TOPIC_ALERTS), bootstrap_servers=stack.settings.kafka_servers(),
                group_id=f"latency-{uuid.uuid4().hex[:6]}", auto_offset_reset="latest", fetch_max_wait_ms=10,
            )  # fmt: skip
            await consumer.start()
            try:
                env = {"OBRUTEN_NOTIFY_TICK_INTERVAL_SECONDS": str(args.interval)}
                with serve(stack, "notify", free_port(), **env) as notify:
                    # The consumer holds its partitions before the first deadline passes.
                    await asyncio.sleep(3)
                    print(f"seeding {args.placements:,} placements ...", file=sys.stderr, flush=True)
                    moments = await seed(url, args.placements, args.due, args.spread, args.lead)
                    arrived: dict[str, tuple[float, float]] = {}
                    deadline = max(moments.values()) + args.interval + 30
                    rss = notify.rss_mb()
                    raw = work / "notify.spy"
                    with py_spy(notify.pid, int(args.lead + args.spread), raw):
                        while len(arrived) < len(moments) and time.time() < deadline:
                            batch = await consumer.getmany(timeout_ms=200)
                            now = time.time()
                            for records in batch.values():
                                for record in records:
                                    event = json.loads(record.value or b"{}")
                                    if event.get("type") == "obruten.alert.opened":
                                        raised = datetime.fromisoformat(event["time"]).timestamp()
                                        arrived.setdefault(event["data"]["placement_id"], (now, raised))
                            rss = max(rss, notify.rss_mb())
                    profile = top_frames(raw)
                    if len(arrived) < len(moments):
                        print((work / "notify.log").read_text()[-3000:], file=sys.stderr)
            finally:
                await consumer.stop()
        finally:
            stack.close()
    keys = [pid for pid in arrived if pid in moments]
    latencies = sorted(arrived[pid][0] - moments[pid] for pid in keys)
    evaluation = sorted(arrived[pid][1] - moments[pid] for pid in keys)
    way_out = sorted(arrived[pid][0] - arrived[pid][1] for pid in keys)
    return {
        "latencies": latencies, "evaluation": evaluation, "way_out": way_out, "expected": len(moments), "rss": rss,
        "profile": profile, "load": load, "load_after": load_average(),
    }  # fmt: skip


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(pct / 100 * (len(values) - 1)))]


def report(res: dict[str, object], args: argparse.Namespace) -> str:
    lat: list[float] = res["latencies"]  # type: ignore[assignment]
    evaluation: list[float] = res["evaluation"]  # type: ignore[assignment]
    way_out: list[float] = res["way_out"]  # type: ignore[assignment]
    profile: list[tuple[str, float]] = res["profile"]  # type: ignore[assignment]
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    complete = len(lat) == res["expected"]
    ok = complete and p99 <= TARGET_P99
    lines = [
        HEADING,
        "",
        recorded(f".venv/bin/python bench/alert_latency.py --placements {args.placements} --write")
        + f" Load average (1, 5, 15 min) at the start: {res['load']}; at the end: {res['load_after']}.",
        "",
        f"`obruten serve notify` (its evaluation loop sleeps until the earliest due time, at most {args.interval:g} s,"
        " woken by an earlier one; own relay), embedded PostgreSQL and broker. "
        f"{args.placements:,} open placements bulk-inserted into notify's tables (4 due-index rows each); "
        f"{args.due} of them have a passed school_gap deadline whose due time falls at a known moment, spread "
        f"evenly over {args.spread:g} s, written in one transaction that ends with `pg_notify` (as another "
        "replica's write does). Latency: arrival of `obruten.alert.opened` on the topic minus the due time, in "
        "seconds; split by the event's `time` (notify's evaluation) into the wait for the evaluation and the way "
        "out (commit, relay, broker, the measuring consumer, which fetches with a 10 ms wait).",
        "",
        "| open placements | deadlines | alerts arrived | p50 (s) | p99 (s) | max (s) | mean (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {args.placements:,} | {res['expected']} | {len(lat)} | {p50:.3f} | {p99:.3f} | "
        f"{(max(lat) if lat else float('nan')):.3f} | {(statistics.mean(lat) if lat else float('nan')):.3f} |",
        "",
        f"Of which due time → evaluation: p50 {percentile(evaluation, 50):.3f} s, p99 {percentile(evaluation, 99):.3f}"
        f" s; evaluation → on the topic: p50 {percentile(way_out, 50):.3f} s, p99 {percentile(way_out, 99):.3f} s.",
        "",
        f"**p99 {p99:.3f} s against the target of {TARGET_P99:g} s"
        f"{'' if complete else ' (some alerts never arrived)'}: {verdict(ok)}.**",
        "",
        f"Notify's peak resident memory during the run: {res['rss']:.0f} MB.",
        "",
    ]
    if profile and not ok:
        lines += ["Where notify spent its time (py-spy, share of samples):", ""]
        lines += [f"- {pct:.0f} % {name}" for name, pct in profile]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--placements", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=300)
    parser.add_argument("--interval", type=float, default=30.0, help="the longest notify's loop sleeps (seconds)")
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
