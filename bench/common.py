"""What the benchmarks share: the machine line, recording a section of RESULTS.md, the embedded
servers, services started as real processes (`obruten serve`), wrk, and resident memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from shared.kernel.settings import Settings  # noqa: E402
from shared.local.embedded import EmbeddedBroker, EmbeddedPostgres, free_port, port_open  # noqa: E402
from shared.local.migrate import _asyncpg_dsn  # noqa: E402
from shared.web.auth import generate_keypair, mint_token  # noqa: E402


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count())
    return f"{nproc} CPUs (nproc), {cpu}; {platform.system()} {platform.release()}; Python {platform.python_version()}"


def recorded(command: str) -> str:
    return f"Recorded {date.today().isoformat()} on {machine()}. Command: `{command}`."


def write_section(heading: str, section: str) -> None:
    """Replace this benchmark's own section of RESULTS.md (or append it); other sections stay."""
    existing = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(existing):
        updated = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", existing)
    else:
        updated = existing.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    RESULTS.write_text(updated.rstrip("\n") + "\n")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` shows them: the machine is shared."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def verdict(ok: bool) -> str:
    return "pass" if ok else "short"


class Stack:
    """An embedded PostgreSQL and broker in a scratch directory, a key pair and an admin token."""

    def __init__(self, workdir: Path, *, broker: bool = True) -> None:
        self.workdir = workdir
        self.pg = EmbeddedPostgres(workdir / "pg", delete_on_stop=True)
        self.broker = EmbeddedBroker("127.0.0.1", free_port(), log_file=workdir / "broker.log") if broker else None
        if self.broker:
            self.broker.start()
        private, public = generate_keypair(workdir / "keys")
        self.private_key, self.public_key = private, public
        self.settings = Settings(
            database_url=self.pg.url(),
            database_prefix="bench_",
            kafka_bootstrap_servers=self.broker.bootstrap if self.broker else None,
            jwt_public_key_file=public,
            rate_limit_writes="100000000/minute",
            # What `obruten run` sets for the embedded broker (shared/local/runner.py): tansu lacks
            # the idempotent producer and holds each fetch for its whole wait.
            kafka_idempotent_producer=False,
            kafka_fetch_max_wait_ms=EmbeddedBroker.FETCH_MAX_WAIT_MS,
        )
        self.admin_token = mint_token(
            private.read_bytes(),
            subject="bench-admin",
            roles=["admin"],
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            ttl_seconds=24 * 3600,
        )

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OBRUTEN_")}
        env.update(
            {
                "OBRUTEN_DATABASE_URL": str(self.settings.database_url),
                "OBRUTEN_DATABASE_PREFIX": self.settings.database_prefix,
                "OBRUTEN_KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_servers(),
                "OBRUTEN_JWT_PUBLIC_KEY_FILE": str(self.public_key),
                "OBRUTEN_RATE_LIMIT_WRITES": self.settings.rate_limit_writes,
                "OBRUTEN_KAFKA_FETCH_MAX_WAIT_MS": str(self.settings.kafka_fetch_max_wait_ms),
                "OBRUTEN_KAFKA_IDEMPOTENT_PRODUCER": "false",
                # Request logging off in both Obruten and the baselines: the same work on both sides.
                "OBRUTEN_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(ROOT),
            }
        )
        env.update(extra)
        return env

    def close(self) -> None:
        if self.broker:
            self.broker.stop()
        self.pg.stop()


class Process:
    """A server process listening on a port; stopped on exit."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.name, self.argv, self.env, self.port, self.log = name, argv, env, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Process:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log}:\n{self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not listen within 60 s")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop(self.proc)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        return rss_mb(self.pid)


def serve(stack: Stack, service: str, port: int, **env: str) -> Process:
    return Process(
        service,
        [sys.executable, "-m", "shared.local.cli", "serve", service, "--skip-migrations"],
        stack.env(**{f"OBRUTEN_{service.upper()}_PORT": str(port)}, **env),
        port,
        stack.workdir / f"{service}.log",
    )


@contextlib.contextmanager
def relay(stack: Stack, service: str) -> Iterator[subprocess.Popen[bytes]]:
    """`obruten relay <service>`: the service's outbox published by a process of its own."""
    with open(stack.workdir / f"{service}-relay.log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.local.cli", "relay", service], env=stack.env(), stdout=out,
            stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def py_spy(pid: int, seconds: int, out: Path) -> Iterator[None]:
    """Sample a process with py-spy (the `bench` extra) while the block runs; no-op without it."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        yield
        return
    proc = subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(seconds), "--format", "raw", "--output", str(out),
         "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        try:
            proc.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()


_FRAMEWORK = re.compile(r"runpy|cli\.py|uvicorn/(main|server|_compat)|asyncio/(base_events|runners|events)\.py")


def top_frames(raw: Path, n: int = 12) -> list[tuple[str, float]]:
    """From py-spy's raw (collapsed) output: the functions most often on the stack (inclusive),
    leaving out the event loop and server frames that are on every stack."""
    if not raw.exists():
        return []
    counts: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        seen = set()
        for frame in stack.split(";"):
            if _FRAMEWORK.search(frame):
                continue
            name = re.sub(r"\((?:[^()]*/)?(?:site-packages/)?([^()]*)\)", r"(\1)", frame)
            if name not in seen:
                seen.add(name)
                counts[name] = counts.get(name, 0) + int(count)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    return [(name, 100 * c / total) for name, c in ranked[:n]] if total else []


WRK_LUA = r"""
-- Each request posts a body for a fresh child id (a child may hold one open placement).
local ids = {}
local counter = 0
local stride = 1
local template = ""
local threads = {}
local tid = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
  stride = tonumber(args[2])
  template = args[3]
  -- Where this run starts in the list: ids an earlier run used already have a placement.
  counter = tid + tonumber(args[4])
end

function request()
  counter = counter + stride
  local body = string.gsub(template, "CHILD_ID", ids[(counter % #ids) + 1])
  return wrk.format("POST", nil, nil, body)
end
"""


def wrk(
    url: str, *, seconds: int, connections: int, threads: int = 1, token: str | None = None,
    ids_file: Path | None = None, template: str | None = None, workdir: Path, offset: int = 0,
) -> dict[str, float]:  # fmt: skip
    """Run wrk; requests/s, p50/p99 latency (ms), and the count of non-2xx answers."""
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency", "--timeout", "10s"]
    argv += ["-H", "Content-Type: application/json"]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    if ids_file is not None and template is not None:
        script = workdir / "post.lua"
        script.write_text(WRK_LUA)
        argv += ["-s", str(script), url, "--", str(ids_file), str(threads), template, str(offset)]
    else:
        argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(out: str) -> dict[str, float]:
    res: dict[str, float] = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        res[f"p{pct}"] = _ms(m.group(1)) if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["errors"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = float(m.group(1)) if m else 0.0
    return res


async def sample_waits(stack: Stack, waits: dict[str, int]) -> None:
    """What the services' PostgreSQL sessions are doing, sampled every 20 ms: CPU (no wait event),
    a lock, the WAL flush of a commit, or waiting for the client (the service's own Python)."""
    conn = await asyncpg.connect(**_asyncpg_dsn(stack.pg.url()))  # type: ignore[arg-type]
    try:
        while True:
            for r in await conn.fetch(
                "SELECT datname, state, coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w "
                "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
                "AND datname LIKE 'bench_%' AND state <> 'idle'"
            ):
                key = f"{r['datname'].removeprefix('bench_')} {r['state']} {r['w']}"
                waits[key] = waits.get(key, 0) + 1
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


def cpu_seconds(pid: int) -> tuple[float, float]:
    """Seconds on a CPU and seconds runnable but waiting for one (the machine is shared), summed
    over the process's threads (/proc/PID/task/*/schedstat)."""
    on = waiting = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            ran, waited, _ = (task / "schedstat").read_text().split()
            on, waiting = on + int(ran) / 1e9, waiting + int(waited) / 1e9
    return on, waiting
