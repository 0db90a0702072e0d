"""Notify's own settings: environment OBRUTEN_NOTIFY_… (the names README documents), read by this
class itself rather than carried by the shared settings. rules/config.py documents the rules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.notify.rules.config import RulesConfig, load_rules_file, parse_rules
from shared.kernel.settings import Settings

PREFIX = "notify_"


class NotifySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OBRUTEN_NOTIFY_", extra="ignore")

    # A rules file (YAML or JSON); inline rules (OBRUTEN_NOTIFY_RULES, JSON) win over it.
    rules_file: Path | None = None
    rules: dict[str, Any] | None = None
    # How often the evaluation tick looks for due rows, and how many it takes per transaction.
    tick_interval_seconds: float = Field(default=30.0, gt=0)
    tick_batch_size: int = Field(default=500, ge=1)
    webhook_poll_interval_seconds: float = Field(default=1.0, gt=0)
    webhook_batch_size: int = Field(default=50, ge=1)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # Attempts in all, including the first; after the last the delivery is dead-lettered.
    webhook_max_attempts: int = Field(default=8, ge=1)
    # Exponential backoff with jitter: attempt n waits initial * 2**(n-1), capped, times a
    # random factor in [0.5, 1] so that receivers coming back are not hit all at once.
    webhook_backoff_initial_seconds: float = Field(default=10.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    # Where webhooks may point, so that a subscription cannot turn notify into a way into the
    # city's internal network. With an allow-list (production: the receivers' host names; a
    # leading dot admits subdomains) only those hosts. Without one, any host except addresses on
    # this machine or a private network (loopback, RFC 1918, link-local such as a cloud metadata
    # service, unique local) and `localhost`, unless allow_private is set (development, tests).
    webhook_allowed_hosts: list[str] = Field(default_factory=list)
    webhook_allow_private: bool = False

    def load_rules(self) -> RulesConfig:
        if self.rules is not None:
            return parse_rules(self.rules, "OBRUTEN_NOTIFY_RULES")
        if self.rules_file is not None:
            return load_rules_file(self.rules_file)
        return parse_rules({}, "defaults")


def notify_settings(settings: Settings) -> NotifySettings:
    """Notify's settings from the environment, with any `notify_*` values the shared settings
    were handed (keyword arguments or model_copy updates) taking precedence, as init values do."""
    given = {k.removeprefix(PREFIX): v for k, v in (settings.model_extra or {}).items() if k.startswith(PREFIX)}
    return NotifySettings(**given)


def _notify_settings(request: Request) -> NotifySettings:
    ns: NotifySettings = request.app.state.notify_settings
    return ns


NotifySettingsDep = Annotated[NotifySettings, Depends(_notify_settings)]
