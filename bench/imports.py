"""Bulk import: 10,000 placements (new children, 13 districts, 6 forms, a third of them ended)
sent with `obruten import placement FILE` to `obruten serve placement` (one uvicorn worker, its
relay publishing the events to the embedded broker meanwhile), then the same file again (every
line `unchanged`). Target: the 10,000 in under 60 s on the 2-core machine.

    .venv/bin/python bench/imports.py            # print the figures
    .venv/bin/python bench/imports.py --write    # and record them in bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncio

import asyncpg

from bench.common import ROOT, Stack, recorded, serve, verdict, write_section
from shared.kernel.settings import STOCKHOLM_DISTRICTS
from shared.local.embedded import free_port
from shared.local.migrate import _asyncpg_dsn, prepare_database
from tests.fixtures.factories import luhn_pnr

HEADING = "## Bulk import"
TARGET_SECONDS = 60.0
FORMS = ["jourhem", "familjehem", "hvb", "sis", "skyddat_boende", "stodboende"]


def lines(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        form = FORMS[i % 6]
        # Stödboende is for ages 16-20: those children are born 2005-2006, the others 2008-2009.
        birth = (date(2005, 1, 1) if form == "stodboende" else date(2008, 1, 1)) + timedelta(days=i % 700)
        serial = 100 + i // 700
        if (birth.month, birth.day) == (2, 29):
            birth, serial = birth - timedelta(days=1), serial + 50  # a serial of its own on 28 February
        start = date(2024, 1, 1) + timedelta(days=i % 600)
        line: dict[str, Any] = {
            "external_id": f"bench-{i}",
            "personnummer": luhn_pnr(birth, serial),
            "protected_identity": i % 50 == 0,
            "district": STOCKHOLM_DISTRICTS[i % 13],
            "form": form,
            "legal_basis": "LVU2" if i % 4 == 0 else "SoL",
            "start_date": start.isoformat(),
            "school_change": i % 2 == 0,
            "outside_municipality": i % 3 == 0,
        }
        if i % 3 == 1:
            line |= {"end_date": (start + timedelta(days=30 + i % 90)).isoformat(), "end_reason": "care_plan"}
        out.append(line)
    return out


def send(file: Path, url: str, token: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "shared.local.cli", "import", "placement", str(file), "--url", url, "--token", token,
         "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"import failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(proc.stdout)
    return elapsed, report


async def counts(url: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(**_asyncpg_dsn(url))  # type: ignore[arg-type]
    try:
        return (
            int(await conn.fetchval("SELECT count(*) FROM child")),
            int(await conn.fetchval("SELECT count(*) FROM placement")),
            int(await conn.fetchval("SELECT count(*) FROM outbox")),
        )
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--placements", type=int, default=10_000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="obruten-bench-") as tmp:
        work = Path(tmp)
        stack = Stack(work)
        try:
            db = stack.settings.service_database_url("placement")
            asyncio.run(prepare_database("placement", db))
            file = work / "placements.ndjson"
            file.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines(args.placements)))
            size = file.stat().st_size
            port = free_port()
            with serve(stack, "placement", port):
                url = f"http://127.0.0.1:{port}"
                first, report = send(file, url, stack.admin_token)
                print(f"first: {first:.1f} s {report['created']} created", file=sys.stderr, flush=True)
                again, report2 = send(file, url, stack.admin_token)
                print(f"again: {again:.1f} s {report2['unchanged']} unchanged", file=sys.stderr, flush=True)
                children, placements, events = asyncio.run(counts(db))
        finally:
            stack.close()
    section = "\n".join(
        [
            HEADING,
            "",
            recorded(".venv/bin/python bench/imports.py --write"),
            "",
            f"{args.placements:,} placement lines ({size / 1e6:.1f} MB of ndjson; each a new child by personnummer, 13 "
            "districts, 6 forms, a third ended, 2 % protected) sent as one `POST /v1/imports` by `obruten import "
            "placement FILE` (the CLI's whole run, process start included) to `obruten serve placement` (one uvicorn "
            "worker; embedded PostgreSQL; its relay publishing the events to the embedded broker meanwhile). Then "
            "the same file again.",
            "",
            "| run | seconds | lines/s | created | unchanged | refused |",
            "|---|---:|---:|---:|---:|---:|",
            f"| first import | {first:.1f} | {args.placements / first:,.0f} | {report['created']:,} | "
            f"{report['unchanged']:,} | {report['refused']:,} |",
            f"| the same file again | {again:.1f} | {args.placements / again:,.0f} | {report2['created']:,} | "
            f"{report2['unchanged']:,} | {report2['refused']:,} |",
            "",
            f"Afterwards: {children:,} children, {placements:,} placements, {events:,} events in the outbox "
            "(started, plus ended for the ended ones: none from the second run).",
            "",
            f"**First import of {args.placements:,} placements {first:.1f} s (target < {TARGET_SECONDS:.0f} s): "
            f"{verdict(first < TARGET_SECONDS and report['created'] == args.placements)}.**",
            "",
        ]
    )
    print(section)
    if args.write:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
