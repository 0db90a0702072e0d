"""Every service's migration history, on a database of its own: up to head, all the way down, and
up again, and the schema it builds is the one the models describe (Alembic's comparison, so a
model changed without a migration fails here, not in production)."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from shared.kernel.settings import Settings
from shared.local.migrate import alembic_config, ensure_database
from shared.local.runner import available_services
from shared.web.registry import service as registered


@pytest.mark.parametrize("service", [s for s in available_services() if registered(s).migrations is not None])
async def test_migrations_go_down_and_up_again_and_match_the_models(service: str, migrated: Settings) -> None:
    fresh = migrated.model_copy(update={"database_prefix": f"{migrated.database_prefix}mig_"})
    url = fresh.service_database_url(service)
    await ensure_database(url)
    cfg = alembic_config(service, url)
    await asyncio.to_thread(command.upgrade, cfg, "head")
    await asyncio.to_thread(command.downgrade, cfg, "base")
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            left = await conn.run_sync(lambda c: c.dialect.get_table_names(c))
        assert set(left) <= {"alembic_version"}, f"downgrade to base left {sorted(left)}"
        await asyncio.to_thread(command.upgrade, cfg, "head")

        metadata = importlib.import_module(f"services.{service}.models").Base.metadata

        def diff(sync_conn: Any) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(sync_conn), metadata))

        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
        assert differences == [], f"{service}: models and migrations differ: {differences}"
    finally:
        await engine.dispose()
