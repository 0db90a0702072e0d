"""`obruten run`: the whole suite on one machine, on embedded defaults unless told otherwise."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.bus.kafka import ensure_topics
from shared.contracts.topics import TOPICS
from shared.kernel.settings import Settings
from shared.local.embedded import EmbeddedBroker, EmbeddedPostgres, port_open
from shared.local.mailsink import MailSink
from shared.local.migrate import prepare_database
from shared.web.auth import generate_keypair, mint_token
from shared.web.registry import service, services


def available_services() -> list[str]:
    """The services this checkout has, in start order (shared/web/registry.py)."""
    return list(services())


def say(message: str) -> None:
    print(f"obruten: {message}", flush=True)


@dataclass
class _Suite:
    """What `obruten run` started, so that it can stop it all."""

    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    postgres: EmbeddedPostgres | None = None
    broker: EmbeddedBroker | None = None
    mail: MailSink | None = None
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


def run(settings: Settings) -> int:
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "logs").mkdir(exist_ok=True)
    suite = _Suite()
    stopping = False

    def _stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        effective = _start_servers(settings, suite, data_dir)
        services = available_services()
        asyncio.run(_prepare(effective, services))
        mailers = [p for p in (service(n).smtp_env for n in services) if p and not suite.env.get(f"{p}_HOST")]
        if mailers:
            suite.mail = _start_mail(settings, data_dir, suite.env, mailers)
        _development_keys(settings, suite.env, data_dir)
        for plain in (service(n).plain_http_env for n in services):
            if plain and _loopback(settings.host) and plain not in suite.env:
                # A front end served over plain http on this machine: its session cookie cannot be Secure.
                suite.env[plain] = "true"
        _start_services(settings, suite, services, data_dir)
        _wait_listening(settings, suite.children)
        _announce(settings, suite.env, services, data_dir)
        while not stopping:
            for name, proc in suite.children.items():
                if proc.poll() is not None:
                    say(f"{name} exited with code {proc.returncode}; stopping (see its log)")
                    stopping = True
            time.sleep(0.5)
        return 0
    finally:
        _stop_suite(suite)


def _start_servers(settings: Settings, suite: _Suite, data_dir: Path) -> Settings:
    """PostgreSQL and the broker: the configured ones, else embedded ones started here."""
    env = suite.env
    if settings.database_url:
        say("using the PostgreSQL server at OBRUTEN_DATABASE_URL")
    else:
        say(f"starting embedded PostgreSQL in {data_dir / 'postgres'}")
        suite.postgres = EmbeddedPostgres(data_dir / "postgres")
        env["OBRUTEN_DATABASE_URL"] = suite.postgres.url()
    if settings.kafka_bootstrap_servers:
        say(f"using the Kafka broker at {settings.kafka_bootstrap_servers}")
    else:
        suite.broker = EmbeddedBroker(
            "127.0.0.1", settings.embedded_broker_port, log_file=data_dir / "logs" / "broker.log"
        )
        suite.broker.start()
        env["OBRUTEN_KAFKA_BOOTSTRAP_SERVERS"] = suite.broker.bootstrap
        # tansu lacks the idempotent producer; Apache Kafka keeps the default (on).
        env["OBRUTEN_KAFKA_IDEMPOTENT_PRODUCER"] = "false"
        # tansu holds each fetch for the whole wait even when a record arrives (shared/kernel/settings.py).
        env["OBRUTEN_KAFKA_FETCH_MAX_WAIT_MS"] = str(EmbeddedBroker.FETCH_MAX_WAIT_MS)
        say(f"started a Kafka-protocol broker (tansu, in memory) on {suite.broker.bootstrap}")
    return Settings(
        **{
            **settings.model_dump(exclude_unset=True),
            "database_url": env.get("OBRUTEN_DATABASE_URL"),
            "kafka_bootstrap_servers": env.get("OBRUTEN_KAFKA_BOOTSTRAP_SERVERS"),
            "kafka_idempotent_producer": env.get("OBRUTEN_KAFKA_IDEMPOTENT_PRODUCER", "true") == "true",
            "kafka_fetch_max_wait_ms": env.get("OBRUTEN_KAFKA_FETCH_MAX_WAIT_MS") or settings.kafka_fetch_max_wait_ms,
        }
    )


def _development_keys(settings: Settings, env: dict[str, str], data_dir: Path) -> None:
    """Without a configured key, a local signing key and a service token minted with it."""
    if settings.jwt_public_key_file or settings.jwt_jwks_url:
        return
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


def _start_services(settings: Settings, suite: _Suite, services: list[str], data_dir: Path) -> None:
    for name in services:
        port = settings.service_port(name)
        if port_open(settings.host, port):
            raise RuntimeError(f"port {port} for {name} is already in use")
        log = open(data_dir / "logs" / f"{name}.log", "ab")  # noqa: SIM115
        suite.children[name] = subprocess.Popen(
            [sys.executable, "-m", "shared.local.cli", "serve", name, "--skip-migrations"],
            env=suite.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _announce(settings: Settings, env: dict[str, str], services: list[str], data_dir: Path) -> None:
    # The pages people use first: that is the address to open.
    for name in sorted(services, key=lambda s: not service(s).front_end):
        where = "(open this in a browser)" if service(name).front_end else "(API docs: /docs)"
        url = f"http://{settings.host}:{settings.service_port(name)}"
        say(f"{name:<10} {url}/  {where}" if service(name).front_end else f"{name:<10} {url}  {where}")
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


def _stop_suite(suite: _Suite) -> None:
    say("stopping")
    for proc in suite.children.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in suite.children.values():
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    if suite.mail is not None:
        suite.mail.stop()
    if suite.broker is not None:
        suite.broker.stop()
    if suite.postgres is not None:
        suite.postgres.stop()
    say("stopped")


def _start_mail(settings: Settings, data_dir: Path, env: dict[str, str], prefixes: list[str]) -> MailSink:
    """The local SMTP server the services that send mail use when no other is configured
    (their spec's smtp_env: OBRUTEN_NOTIFY_SMTP_HOST)."""
    if port_open("127.0.0.1", settings.embedded_smtp_port):
        raise RuntimeError(f"port {settings.embedded_smtp_port} for the local SMTP server is already in use")
    mail = MailSink(data_dir / "mail", port=settings.embedded_smtp_port).start()
    for prefix in prefixes:
        env.update({f"{prefix}_HOST": mail.host, f"{prefix}_PORT": str(mail.port), f"{prefix}_SECURITY": "none"})
    say(f"started a local SMTP server on {mail.host}:{mail.port}; mail is kept in {data_dir / 'mail'}")
    return mail


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


async def _prepare(settings: Settings, services: list[str]) -> None:
    for name in services:
        if service(name).migrations is None:
            continue  # a service without a database of its own (a front end)
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
