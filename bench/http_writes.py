"""HTTP writes: `POST /v1/placements` on the placement service against a bare FastAPI endpoint
inserting one row through SQLAlchemy, in the same run, on the same PostgreSQL.

Both run as one uvicorn worker (`obruten serve placement`; `uvicorn bench.bare_app:app`), both
loaded by wrk with the same connections and duration, alternating rounds so that drift on the
machine hits both alike. Obruten's request: JWT check, rate limit, security headers, metrics,
validation (personnummer-free body, child lookup, overlap check), the placement row, its outbox
row and its audit row in one statement, with the outbox relay publishing to the embedded broker
meanwhile.

    .venv/bin/python bench/http_writes.py            # print the figures
    .venv/bin/python bench/http_writes.py --write    # and record them in bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Process, Stack, py_spy, recorded, relay, serve, top_frames, verdict, write_section, wrk
from shared.local.embedded import free_port
from shared.local.migrate import _asyncpg_dsn, ensure_database, prepare_database

HEADING = "## HTTP writes"
LIMITS = """\
What changed since the run before (issue 18, second pass, 2026-12-01; 30 % then, on a quiet machine):
- A service that runs its own relay writes its outbox without a NOTIFY. The outbox trigger that
  wakes a relay in another process (`obruten relay`, a bulk load) skips the NOTIFY when the writing
  connection says `obruten.relay_in_process=on`, as every connection of such a process does: a
  NOTIFY holds PostgreSQL's notification-queue lock until its commit is done, so commits that
  notify run one at a time. Back to back on this machine: 38 % and 30 % of bare with the NOTIFY on
  every write, 43 % and 39 % without.
- The relay: a batch is three statements on a Core connection (the publishing lock and the claim
  in one, the rows marked sent, the commit), the stored payload text sent as it is, one producer
  span per batch, batches of up to 1,000, and a 10 ms linger while writes stream in.
- Server spans come from FastAPI's own telemetry (`FastAPI(telemetry=…)`) instead of the contrib
  FastAPIInstrumentor: two fewer middleware layers, and the span named from the route the router
  matched rather than by matching every route again.
- Spans are recorded only when something exports them (`OTEL_EXPORTER_OTLP_ENDPOINT`, or a sampler
  chosen with `OTEL_TRACES_SAMPLER`); otherwise the sampler is ALWAYS_OFF, whose spans keep valid
  contexts, so traceparents reach the outbox and trace ids the log lines. SQL statement spans are
  attached only when spans are recorded. `obruten serve` used to record every span and statement
  and drop them.
- Every route dependency is async (tests/kernel/test_dependencies.py checks every app): a plain
  `def` dependency ran in the thread pool, a thread hop each per request.
- uvloop and httptools (what uvicorn[standard] adds), for both sides of this benchmark.
- The deferred write runs as Core on the session's connection; `gc.freeze()` after start-up.
In process (cProfile over sequential requests, a count that repeats from run to run): about 6,150
Python function calls per request before, 4,640 after (the bare endpoint: 2,240, of which about 700
are the test client's).

Running the relay in a process of its own (second row) gains nothing here: on two cores it takes its
CPU from the same machine, and in process it costs the worker little now that it publishes in
batches. It is there for deployments that want the serving process to do nothing else.

What limits it. The worker is CPU-bound (one uvicorn worker on one core). What it does that the bare
endpoint does not: the token's check (cached per token), the rate limit (a moving window, about
60 us), the access policy, the child's read, one guarded statement of four CTEs (the child locked and
re-checked, the placement, its outbox row with the event built and serialised, the audit row), the
protection rule on the answer, request-id, metrics and audit layers, and the relay. What is left,
by the profiles: FastAPI's dependency resolution (about 11 dependency nodes a request; HTTPBearer, a
security scheme, makes FastAPI compute OAuth-scope cache keys for each), SQLAlchemy's work around
each of the two statements (about 590 calls a request: the session, compiled-statement cache keys,
parameter processing, greenlet hops) and socket writes, which on this VM hand the core to the
receiver. What would close more of it: the guarded write sent as a prepared asyncpg statement
(skipping SQLAlchemy's per-execute work), authentication, policy and session as one dependency,
and a rate limit of counters (a sliding window counter, about 9 us) with a Retry-After computed
exactly: `limits` answers the end of the current fixed window, when the weighted count may still
refuse, so it went back to the moving window.
"""
TARGET = 0.70
BARE_TABLE = """
CREATE TABLE IF NOT EXISTS bare_placement (
    id uuid PRIMARY KEY, child_id uuid NOT NULL, district text NOT NULL, form text NOT NULL,
    legal_basis text NOT NULL, start_date date NOT NULL, school_change boolean NOT NULL
)"""
SEED_CHILDREN = """
INSERT INTO child (id, personnummer, coordination_number, birth_date, protected_identity, district)
SELECT gen_random_uuid(), '2013' || lpad(i::text, 8, '0'), false, DATE '2013-04-02', false, 'Farsta'
FROM generate_series(1, $1) AS i
"""


async def prepare(stack: Stack, children: int, ids_file: Path) -> str:
    url = stack.settings.service_database_url("placement")
    await prepare_database("placement", url)
    conn = await asyncpg.connect(**_asyncpg_dsn(url))  # type: ignore[arg-type]
    try:
        await conn.execute(SEED_CHILDREN, children)
        ids = [str(r["id"]) for r in await conn.fetch("SELECT id FROM child")]
    finally:
        await conn.close()
    ids_file.write_text("\n".join(ids) + "\n")
    bare_url = stack.settings.model_copy(update={"database_prefix": "bare_"}).service_database_url("placement")
    await ensure_database(bare_url)
    conn = await asyncpg.connect(**_asyncpg_dsn(bare_url))  # type: ignore[arg-type]
    try:
        await conn.execute(BARE_TABLE)
    finally:
        await conn.close()
    return bare_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    body = json.dumps(
        {
            "child_id": "CHILD_ID",
            "district": "Farsta",
            "form": "familjehem",
            "legal_basis": "SoL",
            "start_date": date.today().isoformat(),
            "school_change": True,
        }
    )
    results: dict[str, list[dict[str, float]]] = {"obruten": [], "separate": [], "bare": []}
    profile: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="obruten-bench-") as tmp:
        work = Path(tmp)
        stack = Stack(work)
        try:
            ids_file = work / "children.txt"
            # Enough fresh children that no request meets one that already has an open placement.
            bare_url = asyncio.run(prepare(stack, 400_000, ids_file))
            port, bare_port = free_port(), free_port()
            bare = Process(
                "bare",
                [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(bare_port), "--workers", "1",
                 "--no-access-log", "--log-level", "warning"],
                {**stack.env(), "BARE_DATABASE_URL": bare_url},
                bare_port,
                work / "bare.log",
            )  # fmt: skip
            load = {"seconds": args.seconds, "connections": args.connections, "workdir": work, "ids_file": ids_file}
            used = 0

            def run(url: str, seconds: int, token: str | None = None) -> dict[str, float]:
                nonlocal used
                res = wrk(url, **{**load, "seconds": seconds}, token=token, template=body, offset=used)
                # Requests still in flight when wrk stops are not counted; skip past them too.
                used += int(res["requests"]) + 4 * args.connections
                return res

            for rnd in range(args.rounds):
                with serve(stack, "placement", port) as placement:
                    url = f"http://127.0.0.1:{port}/v1/placements"
                    run(url, 3, stack.admin_token)  # warm-up
                    if rnd == 0:
                        with py_spy(placement.pid, args.seconds, work / "placement.spy"):
                            res = run(url, args.seconds, stack.admin_token)
                        profile = top_frames(work / "placement.spy", 25)
                    else:
                        res = run(url, args.seconds, stack.admin_token)
                    results["obruten"].append(res)
                    print(f"obruten round {rnd + 1}: {res}", file=sys.stderr, flush=True)
                # The same, with the relay as a process of its own (OBRUTEN_OUTBOX_RELAY_IN_PROCESS=false).
                with (
                    serve(stack, "placement", port, OBRUTEN_OUTBOX_RELAY_IN_PROCESS="false"),
                    relay(stack, "placement"),
                ):
                    url = f"http://127.0.0.1:{port}/v1/placements"
                    run(url, 3, stack.admin_token)
                    res = run(url, args.seconds, stack.admin_token)
                    results["separate"].append(res)
                    print(f"separate relay round {rnd + 1}: {res}", file=sys.stderr, flush=True)
                with bare:
                    url = f"http://127.0.0.1:{bare_port}/bare"
                    run(url, 3)
                    res = run(url, args.seconds)
                    results["bare"].append(res)
                    print(f"bare round {rnd + 1}: {res}", file=sys.stderr, flush=True)
        finally:
            stack.close()
    section = report(results, profile, args)
    print(section)
    if args.write:
        write_section(HEADING, section)


def report(
    results: dict[str, list[dict[str, float]]], profile: list[tuple[str, float]], args: argparse.Namespace
) -> str:
    def agg(name: str, key: str) -> float:
        return statistics.mean(r[key] for r in results[name])

    ratio = agg("obruten", "rps") / agg("bare", "rps")
    separate = agg("separate", "rps") / agg("bare", "rps")
    rows = []
    labels = (
        ("obruten", "Obruten `POST /v1/placements`, relay in the serving process (the default)"),
        ("separate", "the same, relay in a process of its own (`obruten relay placement`)"),
        ("bare", "bare FastAPI + SQLAlchemy insert"),
    )
    for name, label in labels:
        rows.append(
            f"| {label} | {agg(name, 'rps'):.0f} | {agg(name, 'p50'):.1f} | {agg(name, 'p99'):.1f} | "
            f"{sum(int(r['errors']) for r in results[name])} / {sum(int(r['requests']) for r in results[name])} | "
            + ", ".join(f"{r['rps']:.0f}" for r in results[name])
            + " |"
        )
    lines = [
        HEADING,
        "",
        recorded("sudo apt-get install wrk; .venv/bin/python bench/http_writes.py --write"),
        "",
        f"Each side one uvicorn worker on the same embedded PostgreSQL (pool 10 + 10), wrk with "
        f"{args.connections} connections, 1 thread, {args.seconds} s per round after a 3 s warm-up, "
        f"{args.rounds} rounds alternating; figures are the mean of the rounds. Request logging off on both.",
        "Obruten's relay publishes the outbox to the embedded broker during the run: in the serving process, "
        "or (second row) in a process of its own on the same two cores.",
        "",
        "| endpoint | requests/s | p50 (ms) | p99 (ms) | non-2xx / requests | requests/s per round |",
        "|---|---:|---:|---:|---:|---|",
        *rows,
        "",
        f"**Ratio: {100 * ratio:.0f} % of the bare baseline's throughput with the relay in the serving process, "
        f"{100 * separate:.0f} % with it in a process of its own (target ≥ {100 * TARGET:.0f} %): "
        f"{verdict(ratio >= TARGET)} / {verdict(separate >= TARGET)}.**",
        "",
        "Where the placement worker's time goes (py-spy, first round, share of samples with the function on the "
        "stack):",
        "",
        "```",
        *[f"{share:5.1f} %  {name}" for name, share in profile],
        "```",
        "",
        LIMITS,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
