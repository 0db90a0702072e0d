"""Per-service databases and Alembic migrations, applied the same way everywhere."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.web.registry import service

# One lock id for every service's migrations: replicas starting together migrate once.
_MIGRATION_LOCK = 0x0B5_0001


def _asyncpg_dsn(url: str, database: str | None = None) -> dict[str, object]:
    u = make_url(url)
    kwargs: dict[str, object] = {
        "user": u.username,
        "password": u.password,
        "database": database or u.database,
        "port": u.port,
    }
    host = u.query.get("host") or u.host
    kwargs["host"] = host if isinstance(host, str) else (host[0] if host else None)
    return {k: v for k, v in kwargs.items() if v is not None}


async def ensure_database(url: str) -> None:
    """Create the database the URL names, if missing (connects to `postgres` to do it)."""
    name = make_url(url).database
    if not name:
        raise ValueError("database URL names no database")
    conn = await asyncpg.connect(**_asyncpg_dsn(url, "postgres"))  # type: ignore[arg-type]
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


def alembic_config(name: str, url: str) -> Config:
    migrations = service(name).migrations
    if migrations is None:
        raise ValueError(f"service {name} has no database")
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations))
    cfg.attributes["url"] = url
    return cfg


def upgrade(name: str, url: str, revision: str = "head") -> None:
    """Apply a service's migrations. Runs its own event loop: call it from a thread
    (asyncio.to_thread) when a loop is already running."""
    command.upgrade(alembic_config(name, url), revision)


async def prepare_database(name: str, url: str) -> None:
    if service(name).migrations is None:
        return  # a service without a database of its own
    await ensure_database(url)
    await asyncio.to_thread(upgrade, name, url)


def run_migrations(target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py."""
    url = context.config.attributes.get("url")
    if not url:
        from shared.kernel.settings import get_settings

        url = get_settings().service_database_url(context.config.get_main_option("service") or "")

    def do_run(connection: Connection) -> None:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
        try:
            context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})

    async def main() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(main())
