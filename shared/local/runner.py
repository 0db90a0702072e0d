"""`obruten run`: the whole suite on one machine, on embedded defaults unless told otherwise."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.bus.kafka import ensure_topics
from shared.contracts.topics import TOPICS
from shared.kernel.settings import Settings
from shared.local.embedded import EmbeddedBroker, EmbeddedPostgres, port_open
from shared.local.migrate import prepare_database
from shared.web.auth import generate_keypair, mint_token
from shared.web.registry import services


def available_services() -> list[str]:
    """The services this checkout has, in start order (shared/web/registry.py)."""
    return list(services())


def say(message: str) -> None:
    print(f"obruten: {message}", flush=True)


def run(settings: Settings) -> int:
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "logs").mkdir(exist_ok=True)
    env = dict(os.environ)
    postgres: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        if settings.database_url:
            say("using the PostgreSQL server at OBRUTEN_DATABASE_URL")
        else:
            say(f"starting embedded PostgreSQL in {data_dir / 'postgres'}")
            postgres = EmbeddedPostgres(data_dir / "postgres")
            env["OBRUTEN_DATABASE_URL"] = postgres.url()
        if settings.kafka_bootstrap_servers:
            say(f"using the Kafka broker at {settings.kafka_bootstrap_servers}")
        else:
            broker = EmbeddedBroker(
                "127.0.0.1", settings.embedded_broker_port, log_file=data_dir / "logs" / "broker.log"
            )
            broker.start()
            env["OBRUTEN_KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
            say(f"started a Kafka-protocol broker (tansu, in memory) on {broker.bootstrap}")
        effective = Settings(
            **{
                **settings.model_dump(exclude_unset=True),
                "database_url": env.get("OBRUTEN_DATABASE_URL"),
                "kafka_bootstrap_servers": env.get("OBRUTEN_KAFKA_BOOTSTRAP_SERVERS"),
            }
        )

        services = available_services()
        asyncio.run(_prepare(effective, services))

        if not (settings.jwt_public_key_file or settings.jwt_jwks_url):
            private, public = generate_keypair(data_dir / "keys")
            env["OBRUTEN_JWT_PUBLIC_KEY_FILE"] = str(public)
            env["OBRUTEN_JWT_PRIVATE_KEY_FILE"] = str(private)
            if not settings.service_token:
                env["OBRUTEN_SERVICE_TOKEN"] = mint_token(
                    private.read_bytes(),
                    subject="service:obruten",
                    roles=["service"],
                    issuer=settings.jwt_issuer,
                    audience=settings.jwt_audience,
                    ttl_seconds=30 * 24 * 3600,
                )

        for name in services:
            port = settings.service_port(name)
            if port_open(settings.host, port):
                raise RuntimeError(f"port {port} for {name} is already in use")
            log = open(data_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115
            children[name] = subprocess.Popen(
                [sys.executable, "-m", "shared.local.cli", "serve", name, "--skip-migrations"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_listening(settings, children)
        for name in services:
            say(f"{name:<10} http://{settings.host}:{settings.service_port(name)}  (API docs: /docs)")
        say(f"logs in {data_dir / 'logs'}")
        if "OBRUTEN_JWT_PRIVATE_KEY_FILE" in env:
            token = mint_token(
                Path(env["OBRUTEN_JWT_PRIVATE_KEY_FILE"]).read_bytes(),
                subject="dev-admin",
                roles=["admin"],
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
            )
            say(
                "a development token (role admin, 8 hours); "
                "`obruten token --role caseworker --district Farsta` mints others:"
            )
            print(token, flush=True)
        say("running; Ctrl-C stops everything")
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    say(f"{name} exited with code {proc.returncode}; stopping (see its log)")
                    stopping = True
            time.sleep(0.5)
        return 0
    finally:
        say("stopping")
        for proc in children.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in children.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if broker is not None:
            broker.stop()
        if postgres is not None:
            postgres.stop()
        say("stopped")


async def _prepare(settings: Settings, services: list[str]) -> None:
    for name in services:
        await prepare_database(name, settings.service_database_url(name))
        say(f"database obruten_{name} migrated")
    await ensure_topics(settings, TOPICS)


def _wait_listening(settings: Settings, children: dict[str, subprocess.Popen[bytes]], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    pending = set(children)
    while pending:
        for name in list(pending):
            if children[name].poll() is not None:
                raise RuntimeError(f"{name} exited at start; see its log")
            if port_open(settings.host, settings.service_port(name)):
                pending.discard(name)
        if time.monotonic() > deadline:
            raise RuntimeError(f"not listening after {timeout}s: {', '.join(sorted(pending))}")
        time.sleep(0.1)
