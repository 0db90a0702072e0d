"""The services of the suite, as the runner, the CLI, the migrations and the tests see them.

Each service package has a `spec.py` whose `SERVICE` (a ServiceDefinition) says everything the
tooling needs: its name, its app factory, its migrations, its settings class, its routes' access
rules and the event types it emits. The list of services is in ONE place, pyproject.toml's
entry-point group `obruten.services`; nothing in shared/ names a service. Adding one is one line
there (`web = "services.web.spec:SERVICE"`) and `make install`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from shared.bus.replay import ReplaySpec
from shared.contracts.envelope import EventType
from shared.kernel.clock import Clock
from shared.kernel.settings import Settings
from shared.web.policy import RouteRule

GROUP = "obruten.services"


class AppFactory(Protocol):
    # service_settings: an instance of the service's own settings class (ServiceDefinition.settings);
    # None: the factory reads it from the environment.
    def __call__(
        self, settings: Settings | None = None, clock: Clock | None = None, service_settings: Any = None
    ) -> FastAPI: ...


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    create_app: AppFactory
    # The service's Alembic directory; None for a service without a database.
    migrations: Path | None
    # Its own settings class (services/<service>/settings.py, environment OBRUTEN_<SERVICE>_…),
    # which its app factory takes as `service_settings`.
    settings: type[BaseSettings] = Settings
    routes: Mapping[tuple[str, str], RouteRule] = field(default_factory=dict)
    # The event types it produces (declared in shared/contracts/).
    emits: Sequence[EventType] = ()
    # Where the service starts in `obruten run`: lower first.
    order: int = 100
    # Pages for people (services/web): `obruten run` prints its address first.
    front_end: bool = False
    # Its long-running tasks besides the relay and the consumers (notify's tick and senders, the
    # school's SS 12000 intake), each given the running app: the very tuple its app factory hands
    # shared.web.app.ServiceSpec, so that what runs is what is registered.
    background: Sequence[Callable[[FastAPI], Awaitable[None]]] = ()
    # How `obruten replay <service>` rebuilds its projection from the topics; None: it has none.
    replay: ReplaySpec | None = None
    # The prefix of its SMTP variables when it sends mail (`OBRUTEN_NOTIFY_SMTP`): unless
    # <prefix>_HOST is set, `obruten run` starts a local SMTP server and sets _HOST, _PORT, _SECURITY.
    smtp_env: str | None = None
    # The variable that lets its session cookie go without Secure: `obruten run` sets it to true
    # when it serves on a loopback address (plain http on this machine).
    plain_http_env: str | None = None

    @property
    def settings_prefix(self) -> str:
        """The own settings' prefix as a keyword: `notify_` for OBRUTEN_NOTIFY_…"""
        return str(self.settings.model_config.get("env_prefix") or "").removeprefix("OBRUTEN_").lower()


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads: prefix and field name, or the field's
    own names (validation_alias) where it keeps an older one too."""
    prefix = str(cls.model_config.get("env_prefix") or "")
    names: set[str] = set()
    for name, info in cls.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(choice).upper() for choice in alias.choices}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def _load(ep: EntryPoint) -> ServiceDefinition:
    definition = ep.load()
    if not isinstance(definition, ServiceDefinition):
        raise TypeError(f"entry point {ep.name} ({ep.value}) is not a ServiceDefinition")
    if definition.name != ep.name:
        raise ValueError(f"entry point {ep.name} names service {definition.name}")
    return definition


def names() -> list[str]:
    """The registered services' names, without importing any of them (sorted by name)."""
    return sorted(ep.name for ep in entry_points(group=GROUP))


@cache
def services() -> dict[str, ServiceDefinition]:
    """Every registered service by name, in start order."""
    found = [_load(ep) for ep in entry_points(group=GROUP)]
    return {d.name: d for d in sorted(found, key=lambda d: (d.order, d.name))}


@cache
def service(name: str) -> ServiceDefinition:
    """One service, importing only it (a container serving one service loads no other)."""
    for ep in entry_points(group=GROUP, name=name):
        return _load(ep)
    raise KeyError(f"no service {name!r} is registered (pyproject.toml, entry points {GROUP})")


def all_routes() -> dict[tuple[str, str], RouteRule]:
    """The access rules of every registered service's routes."""
    merged: dict[tuple[str, str], RouteRule] = {}
    for definition in services().values():
        merged.update(definition.routes)
    return merged
