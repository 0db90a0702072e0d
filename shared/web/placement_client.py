"""The HTTP client school and health keep for placements not yet seen on the bus: opened with the
app, closed with it, handed to routes as a dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request

from shared.bus.placement_copy import PlacementClient
from shared.web.runtime import runtime


async def open_placement_client(app: FastAPI) -> None:
    # One pooled client for the app's lifetime, for placements not yet seen on the bus.
    runtime(app).placement_client = PlacementClient(runtime(app).settings)


async def close_placement_client(app: FastAPI) -> None:
    client = runtime(app).placement_client
    if client is not None:
        await client.close()


def placement_client(app: FastAPI) -> PlacementClient:
    client = runtime(app).placement_client
    if client is None:
        raise RuntimeError("the placement client is opened when the app starts (open_placement_client)")
    return client


async def _placement_client(request: Request) -> PlacementClient:
    return placement_client(request.app)


PlacementClientDep = Annotated[PlacementClient, Depends(_placement_client)]
