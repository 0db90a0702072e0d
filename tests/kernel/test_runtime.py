"""Each app keeps one attribute on app.state, its typed runtime (shared/web/runtime.py), built
and started: nothing of a service's lives in an untyped attribute beside it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from services.web.context import WebRuntime
from shared.kernel.settings import Settings
from shared.web.registry import names, services
from shared.web.runtime import ServiceRuntime, runtime
from tests.fixtures.support import service_app

WITH_DATABASE = [name for name, d in services().items() if d.migrations is not None]


def held(app: FastAPI) -> set[str]:
    # Starlette's State keeps its attributes in this one dict; it offers no public listing.
    return set(app.state._state)


@pytest.mark.parametrize("name", names())
def test_a_built_app_keeps_only_its_runtime_on_app_state(name: str) -> None:
    app = service_app(name, Settings(), None)
    assert held(app) == {"runtime"}
    assert isinstance(app.state.runtime, ServiceRuntime if name in WITH_DATABASE else WebRuntime)


@pytest.mark.parametrize("name", WITH_DATABASE)
async def test_a_started_service_keeps_only_its_runtime_on_app_state(name: str, service_client: Any) -> None:
    async with service_client(name) as client:
        app: FastAPI = client.app  # type: ignore[attr-defined]
        assert held(app) == {"runtime"}
        started = runtime(app)
        # What the lifespan sets, set on the runtime: the database, the relay, the consumers.
        assert started.sessionmaker is not None and started.relay is not None and started.consumers
        if name in ("school", "health"):
            assert started.placement_client is not None


def test_the_database_is_refused_clearly_before_the_app_starts() -> None:
    app = service_app("placement", Settings(), None)
    with pytest.raises(RuntimeError, match="has not started"):
        _ = runtime(app).sessionmaker
