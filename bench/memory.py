"""Resident memory (RSS) of the four services, idle and under load.

All four run as processes (`obruten serve <service>`) on an embedded PostgreSQL and broker. Idle:
RSS after start-up and a few quiet seconds (consumers joined, relays polling). Under load, for
`--seconds`: wrk writes placements at the placement service (each write an event that school,
health and notify consume into their projections and notify evaluates), while a second wrk reads
list endpoints of school, health and notify in turn; RSS is sampled every half second and the peak
is reported.

    .venv/bin/python bench/memory.py            # print the figures
    .venv/bin/python bench/memory.py --write    # and record them in bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Process, Stack, recorded, serve, verdict, write_section, wrk
from bench.http_writes import prepare
from shared.bus.kafka import ensure_topics
from shared.contracts.topics import TOPICS
from shared.local.embedded import free_port
from shared.local.migrate import prepare_database

HEADING = "## Resident memory"
TARGET_MB = 150.0
SERVICES = ("placement", "school", "health", "notify")
READS = {"school": "/v1/school-starts", "health": "/v1/examinations", "notify": "/v1/alerts"}


async def setup(stack: Stack, children: int, ids_file: Path) -> None:
    await prepare(stack, children, ids_file)
    for service in SERVICES[1:]:
        await prepare_database(service, stack.settings.service_database_url(service))
    await ensure_topics(stack.settings, TOPICS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=30, help="seconds under load")
    parser.add_argument("--idle", type=int, default=10, help="quiet seconds before the idle reading")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    body = json.dumps(
        {"child_id": "CHILD_ID", "district": "Farsta", "form": "familjehem", "legal_basis": "SoL",
         "start_date": date.today().isoformat(), "school_change": True}
    )  # fmt: skip
    idle: dict[str, float] = {}
    peak: dict[str, float] = {}
    writes: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="obruten-bench-") as tmp:
        work = Path(tmp)
        stack = Stack(work)
        try:
            ids_file = work / "children.txt"
            asyncio.run(setup(stack, 50_000, ids_file))
            ports = {s: free_port() for s in SERVICES}
            # Every service knows every port: school and health ask placement for unseen placements.
            env = {f"OBRUTEN_{s.upper()}_PORT": str(p) for s, p in ports.items()}
            with contextlib.ExitStack() as running:
                procs: dict[str, Process] = {}
                for s in SERVICES:
                    others = {k: v for k, v in env.items() if k != f"OBRUTEN_{s.upper()}_PORT"}
                    procs[s] = running.enter_context(serve(stack, s, ports[s], **others))
                time.sleep(args.idle)
                idle = {s: p.rss_mb() for s, p in procs.items()}
                peak = dict(idle)
                stop = threading.Event()

                def sample() -> None:
                    while not stop.is_set():
                        for s, p in procs.items():
                            with contextlib.suppress(OSError):
                                peak[s] = max(peak[s], p.rss_mb())
                        stop.wait(0.5)

                def reads() -> None:
                    share = max(args.seconds // len(READS), 1)
                    for s, path in READS.items():
                        wrk(f"http://127.0.0.1:{ports[s]}{path}", seconds=share, connections=8, workdir=work,
                            token=stack.admin_token)  # fmt: skip

                sampler = threading.Thread(target=sample, daemon=True)
                reader = threading.Thread(target=reads, daemon=True)
                sampler.start()
                reader.start()
                writes = wrk(
                    f"http://127.0.0.1:{ports['placement']}/v1/placements", seconds=args.seconds, connections=32,
                    workdir=work, token=stack.admin_token, ids_file=ids_file, template=body,
                )  # fmt: skip
                reader.join()
                time.sleep(3)  # the consumers catch up with the last writes
                stop.set()
                sampler.join()
        finally:
            stack.close()
    worst = max(peak.values())
    rows = [f"| {s} | {idle[s]:.0f} | {peak[s]:.0f} | {verdict(peak[s] < TARGET_MB)} |" for s in SERVICES]
    section = "\n".join(
        [
            HEADING,
            "",
            recorded(".venv/bin/python bench/memory.py --write"),
            "",
            f"Each service one `obruten serve` process. Idle: after start-up and {args.idle} s. Under load: "
            f"{args.seconds} s of placement writes (wrk, 32 connections: {writes.get('rps', 0):.0f} requests/s, "
            f"{int(writes.get('errors', 0))} non-2xx; each write an event consumed by school, health and notify) "
            "with list reads on school, health and notify (wrk, 8 connections) alongside; peak of samples every "
            "0.5 s. Megabytes (MiB) resident.",
            "",
            "| service | idle (MB) | peak under load (MB) | < 150 MB |",
            "|---|---:|---:|---|",
            *rows,
            "",
            f"**Largest peak {worst:.0f} MB (target < {TARGET_MB:.0f} MB each): {verdict(worst < TARGET_MB)}.**",
            "",
        ]
    )
    print(section)
    if args.write:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
