"""Notify's own settings: environment OBRUTEN_NOTIFY_… (the names README documents), read by this
class itself rather than carried by the shared settings. rules/config.py documents the rules."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.notify.rules.calendar import SHIPPED, SchoolYear, load_school_years, with_calendars
from services.notify.rules.config import RulesConfig, load_rules_file, parse_rules
from services.notify.runtime import notify_runtime


class NotifySettings(BaseSettings):
    # A misspelt keyword is refused; an unknown OBRUTEN_NOTIFY_ variable is not read.
    model_config = SettingsConfigDict(env_prefix="OBRUTEN_NOTIFY_", extra="forbid")

    # A rules file (YAML or JSON); inline rules (OBRUTEN_NOTIFY_RULES, JSON) win over it.
    rules_file: Path | None = None
    rules: dict[str, Any] | None = None
    # The evaluation loop sleeps until the earliest due time in the index, woken earlier when a
    # write makes an earlier one (services/notify/schedule.py: a commit in this process, or
    # PostgreSQL NOTIFY from another replica); this is the longest it sleeps all the same, the
    # safety net for a missed wake-up or a clock that jumped. tick_batch_size: how many due rows
    # one transaction takes.
    tick_interval_seconds: float = Field(default=30.0, gt=0)
    tick_batch_size: int = Field(default=500, ge=1)
    # Late history: new alerts of a child whose placement notify learnt of less than this long
    # ago are held (and a placement's end does not resolve the child's alerts until it has
    # passed), so that the rest of a history being entered (the next placement of a move, the
    # school start, an import's other records) can arrive first. A real breach still alerts
    # when the period ends. 0: evaluate at once.
    settle_seconds: float = Field(default=900.0, ge=0)
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
    # After a secret rotation the old secret still signs deliveries (beside the new) this long.
    webhook_secret_overlap_seconds: int = Field(default=86_400, ge=0, le=30 * 86_400)

    # --- mail (services/notify/mail/, issue 16) ---
    # The SMTP server notify sends through. Unset: no server is known and mail waits in the
    # queue; `obruten run` starts a local one (mail stored as .eml under data_dir/mail) and
    # points notify at it unless OBRUTEN_NOTIFY_SMTP_HOST is set.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    # starttls: upgrade a plain connection (port 587); tls: implicit TLS (port 465); none: plain
    # (a local relay or the embedded server only).
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # A CA bundle (PEM) to verify the SMTP server's certificate with, e.g. the city's own CA;
    # unset: the system's trusted CAs.
    smtp_ca_file: Path | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    mail_from: str = "Obruten <obruten@localhost>"
    mail_poll_interval_seconds: float = Field(default=2.0, gt=0)
    mail_batch_size: int = Field(default=50, ge=1)
    # Attempts in all; after the last the mail is dead-lettered (GET /v1/mail-deliveries).
    mail_max_attempts: int = Field(default=12, ge=1)
    mail_backoff_initial_seconds: float = Field(default=30.0, gt=0)
    mail_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    # The daily digest's local time (OBRUTEN_TIMEZONE), for those who chose it.
    digest_time: time = time(7, 0)

    # The school-year calendars, one YAML file per school year (services/notify/rules/calendar.py).
    school_years_dir: Path = SHIPPED

    def load_rules(self) -> RulesConfig:
        """The rules, with the school-year calendars' breaks when school_gap pauses in them."""
        if self.rules is not None:
            cfg = parse_rules(self.rules, "OBRUTEN_NOTIFY_RULES")
        elif self.rules_file is not None:
            cfg = load_rules_file(self.rules_file)
        else:
            cfg = parse_rules({}, "defaults")
        return with_calendars(cfg, self.load_school_years())

    def load_school_years(self) -> list[SchoolYear]:
        return load_school_years(self.school_years_dir)


async def _notify_settings(request: Request) -> NotifySettings:
    ns: NotifySettings = notify_runtime(request.app).settings
    return ns


NotifySettingsDep = Annotated[NotifySettings, Depends(_notify_settings)]
