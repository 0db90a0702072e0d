"""The HTTP client school and health keep for placements not yet seen on the bus: opened with the
app, closed with it, handed to routes as a dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request

from shared.bus.placement_copy import PlacementClient


async def open_placement_client(app: FastAPI) -> None:
    # One pooled client for the app's lifetime, for placements not yet seen on the bus.
    app.state.placement_client = PlacementClient(app.state.settings)


async def close_placement_client(app: FastAPI) -> None:
    client: PlacementClient | None = getattr(app.state, "placement_client", None)
    if client is not None:
        await client.close()


def _placement_client(request: Request) -> PlacementClient:
    client: PlacementClient = request.app.state.placement_client
    return client


PlacementClientDep = Annotated[PlacementClient, Depends(_placement_client)]
