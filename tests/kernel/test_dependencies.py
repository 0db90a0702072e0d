"""Every dependency of every route is a coroutine (or an object whose __call__ is one): FastAPI
runs a plain `def` dependency in its thread pool, a thread hop and two context switches per
request for what is usually an attribute lookup."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from shared.kernel.settings import Settings
from shared.web.registry import names
from tests.fixtures.support import service_app


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _runs_in_thread_pool(call: Callable[..., Any]) -> bool:
    target = call if inspect.isfunction(call) or inspect.ismethod(call) else type(call).__call__
    return not (inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target))


@pytest.mark.parametrize("name", names())
def test_no_route_of_the_service_has_a_dependency_that_runs_in_the_thread_pool(name: str) -> None:
    app = service_app(name, Settings(), None)
    # Routes included from routers too, each with the dependencies its router adds (FastAPI >= 0.160).
    routes = [rc.route for rc in iter_route_contexts(app.routes) if isinstance(rc.route, APIRoute)]
    assert routes, "the app has API routes to check"
    sync = {
        f"{route.path}: {call.__module__}.{getattr(call, '__qualname__', type(call).__qualname__)}"
        for route in routes
        for call in _calls(route.dependant)
        if _runs_in_thread_pool(call)
    }
    assert not sync, sorted(sync)
