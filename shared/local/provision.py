"""One-shot set-up steps a deployment runs before the services (docker-compose's init services,
Kubernetes Jobs): migrate every database, create the topics, and (for a stack without an identity
provider) make a signing key pair and a service token."""

from __future__ import annotations

from pathlib import Path

from shared.bus.kafka import ensure_topics
from shared.contracts.topics import TOPICS
from shared.kernel.settings import Settings
from shared.local.migrate import prepare_database
from shared.web.auth import generate_keypair, mint_token

SERVICE_TOKEN_FILE = "service-token"


async def migrate(settings: Settings, services: list[str]) -> None:
    for name in services:
        await prepare_database(name, settings.service_database_url(name))
        print(f"obruten: database {settings.database_prefix}{name} migrated", flush=True)


async def create_topics(settings: Settings) -> None:
    """Every topic, with OBRUTEN_KAFKA_TOPIC_PARTITIONS partitions and
    OBRUTEN_KAFKA_REPLICATION_FACTOR replicas; existing topics are left as they are."""
    await ensure_topics(settings, TOPICS)
    print(
        f"obruten: topics ready ({settings.kafka_topic_partitions} partitions, "
        f"replication factor {settings.kafka_replication_factor})",
        flush=True,
    )


def make_keys(settings: Settings, directory: Path, *, ttl_seconds: int = 30 * 24 * 3600) -> Path:
    """A key pair (kept when it exists) and a fresh service token signed with it, in `directory`.
    The services verify with jwt-public.pem and present the token when they call each other."""
    private, _ = generate_keypair(directory)
    token = mint_token(
        private.read_bytes(),
        subject="service:obruten",
        roles=["service"],
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=ttl_seconds,
    )
    path = directory / SERVICE_TOKEN_FILE
    path.write_text(token)
    path.chmod(0o644)  # read by the services' non-root user; the private key stays 0600
    print(f"obruten: key pair and service token in {directory}", flush=True)
    return path
