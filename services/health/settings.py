"""Health's own settings: environment OBRUTEN_HEALTH_…, read by this class itself rather than
carried by the shared settings (as services/notify/settings.py reads notify's)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.requests import Request

from shared.web.runtime import extra


def _env(name: str) -> AliasChoices:
    # OBRUTEN_HEALTH_<NAME>; OBRUTEN_<NAME>, its name while it was a shared setting, still works.
    return AliasChoices(f"OBRUTEN_HEALTH_{name.upper()}", f"OBRUTEN_{name.upper()}")


class HealthSettings(BaseSettings):
    # A misspelt keyword is refused (extra="forbid"); fields are given by name or by env name.
    model_config = SettingsConfigDict(
        env_prefix="OBRUTEN_HEALTH_", extra="forbid", validate_by_name=True, hide_input_in_errors=True
    )

    # The examination report's deadlines, calendar days from the placement's start. The same
    # default as notify's health_exam_missing / dental_exam_missing rules (30 days, US
    # paediatric guidance, services/notify/rules/config.py); kept apart so health need not read
    # notify's rules file. Set both places when a municipality changes its deadline.
    report_health_exam_days: int = Field(default=30, ge=0, le=3650, validation_alias=_env("report_health_exam_days"))
    report_dental_exam_days: int = Field(default=30, ge=0, le=3650, validation_alias=_env("report_dental_exam_days"))


def health_settings(request: Request) -> HealthSettings:
    own: HealthSettings = extra(request.app, HealthSettings)
    return own
