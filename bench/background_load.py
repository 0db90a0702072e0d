"""Placement writes at a steady rate in a process of their own, for the latency benchmarks'
background load (bench/resolve_latency.py): each write is sent on its own schedule, so a slow
answer does not slow the rate. Run by `start_load`; SIGTERM ends it, and it prints the status codes
and response times as JSON.

    python bench/background_load.py BASE_URL IDS_FILE RATE    # token in BENCH_TOKEN
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx


def placement_body(child_id: str, start: date) -> dict[str, object]:
    return {
        "child_id": child_id, "district": "Farsta", "form": "jourhem", "legal_basis": "SoL",
        "start_date": start.isoformat(), "school_change": True,
    }  # fmt: skip


def start_load(base_url: str, token: str, ids_file: Path, rate: float, work: Path) -> subprocess.Popen[bytes]:
    """The background writes in a process of their own, so that they take nothing from the
    measuring side's event loop (its timestamps)."""
    argv = [sys.executable, __file__, base_url, str(ids_file), str(rate)]
    env = {**os.environ, "BENCH_TOKEN": token}
    return subprocess.Popen(argv, env=env, stdout=open(work / "load.json", "wb"), stderr=subprocess.DEVNULL)


def stop_load(proc: subprocess.Popen[bytes], work: Path) -> dict[str, list[float]]:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    out: dict[str, list[float]] = json.loads((work / "load.json").read_text())
    return out


async def load_only(base_url: str, ids_file: Path, rate: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    headers = {"Authorization": f"Bearer {os.environ['BENCH_TOKEN']}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        statuses, latencies = await background(client, ids_file.read_text().split(), rate, stop)
    print(json.dumps({"statuses": statuses, "latencies": latencies}))


async def background(
    client: httpx.AsyncClient, children: list[str], rate: float, stop: asyncio.Event
) -> tuple[list[int], list[float]]:
    """`rate` placement writes a second, each sent on its own schedule (a slow answer does not slow
    the rate); returns the status codes and the response times."""
    statuses: list[int] = []
    latencies: list[float] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(child: str) -> None:
        t0 = time.monotonic()
        try:
            resp = await client.post("/v1/placements", json=placement_body(child, date.today()))
            statuses.append(resp.status_code)
        except httpx.HTTPError:
            statuses.append(0)
        latencies.append(time.monotonic() - t0)

    start = time.monotonic()
    n = 0
    while not stop.is_set() and n < len(children):
        task = asyncio.create_task(one(children[n]))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, start + n / rate - time.monotonic()))
    await asyncio.gather(*pending, return_exceptions=True)
    return statuses, latencies


if __name__ == "__main__":
    asyncio.run(load_only(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])))
