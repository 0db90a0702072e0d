"""Placement's own settings: environment OBRUTEN_PLACEMENT_…, read by this class itself rather than
carried by the shared settings (as services/notify/settings.py reads notify's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.web.runtime import extra


class PlacementSettings(BaseSettings):
    # A misspelt keyword is refused (extra="forbid"); fields are given by name or by env name.
    model_config = SettingsConfigDict(
        env_prefix="OBRUTEN_PLACEMENT_", extra="forbid", validate_by_name=True, hide_input_in_errors=True
    )

    # A placement start further ahead than this is refused as a typing error.
    # OBRUTEN_PLACEMENT_MAX_FUTURE_START_DAYS; OBRUTEN_MAX_FUTURE_START_DAYS, its name while it was
    # a shared setting, still works.
    max_future_start_days: int = Field(
        default=366,
        validation_alias=AliasChoices("OBRUTEN_PLACEMENT_MAX_FUTURE_START_DAYS", "OBRUTEN_MAX_FUTURE_START_DAYS"),
    )


async def _placement_settings(request: Request) -> PlacementSettings:
    own: PlacementSettings = extra(request.app, PlacementSettings)
    return own


PlacementSettingsDep = Annotated[PlacementSettings, Depends(_placement_settings)]
