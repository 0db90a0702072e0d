"""The SS 12000 sources: OBRUTEN_SCHOOL_SS12000_SOURCES, a JSON list, one object per source.

    [{"name": "stockholm", "url": "https://ss12000.example.se/v2.0", "token": "…"},
     {"name": "friskola", "url": "https://api.example.se/ss12000/v2.0",
      "token_url": "https://idp.example.se/oauth2/token", "client_id": "obruten",
      "client_secret": "…", "scope": "ss12000:read",
      "organisations": ["3fa85f64-5717-4562-b3fc-2c963f66afa6"],
      "push_target": "https://obruten.example.se/ss12000/push/friskola"}]

`organisations` limits a source to those school units (organisation ids at the source): an
enrolment elsewhere is ignored. `push_target`, when set, is registered with the source's
`/subscriptions` so that it wakes the intake as soon as persons change; polling every
OBRUTEN_SCHOOL_SS12000_POLL_SECONDS continues regardless.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The school types whose enrolment means the child is at school: förskoleklass, compulsory
# school (grundskola, grundsärskola, specialskola, sameskola) and upper secondary school.
# Preschool, after-school care and adult education do not stop the clock.
DEFAULT_SCHOOL_TYPES = ("FKLASS", "GR", "GRS", "SP", "SAM", "GY", "GYS")


class SourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$", description="Short and stable: it names the provenance.")
    url: str = Field(pattern=r"^https?://", description="The API's base URL, e.g. https://host/ss12000/v2.0")
    token: SecretStr | None = None
    token_url: str | None = Field(default=None, pattern=r"^https?://")
    client_id: str | None = None
    client_secret: SecretStr | None = None
    scope: str | None = None
    organisations: frozenset[uuid.UUID] | None = None
    school_types: frozenset[str] = frozenset(DEFAULT_SCHOOL_TYPES)
    page_size: int = Field(default=200, ge=1, le=10_000)
    timeout_seconds: float = Field(default=30.0, gt=0)
    # An inconsistent source (a page token that never ends) is cut off here.
    max_pages: int = Field(default=10_000, ge=1)
    push_target: str | None = Field(default=None, pattern=r"^https?://")
    # Ask for changes from this long before the position: for a source that stamps meta.modified
    # when a change begins rather than when it commits, so a slow change is not passed over.
    # Re-reading is harmless (storing an enrolment is idempotent).
    overlap_seconds: float = Field(default=0.0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> SourceConfig:
        oauth = (self.token_url, self.client_id, self.client_secret)
        if self.token is not None and any(v is not None for v in oauth):
            raise ValueError("give either token or token_url/client_id/client_secret, not both")
        if self.token is None and not all(v is not None for v in oauth):
            raise ValueError("give token, or all of token_url, client_id and client_secret")
        return self

    @property
    def provenance(self) -> str:
        return f"ss12000:{self.name}"


class SourcesError(ValueError):
    pass


def parse_sources(raw: list[dict[str, Any]]) -> list[SourceConfig]:
    """The configured sources, or SourcesError naming the entry and field at fault (never a secret)."""
    sources = []
    for i, entry in enumerate(raw):
        try:
            sources.append(SourceConfig.model_validate(entry))
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(entry)'}: {str(e['msg']).removeprefix('Value error, ')}"
                for e in exc.errors(include_input=False)
            )
            raise SourcesError(f"OBRUTEN_SCHOOL_SS12000_SOURCES[{i}]: {where}") from None
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise SourcesError("OBRUTEN_SCHOOL_SS12000_SOURCES: source names must be distinct")
    return sources


class IntakeSettings(BaseSettings):
    """The intake's own settings, OBRUTEN_SCHOOL_SS12000_… (as services/notify/settings.py reads
    notify's). The match key is not here: placement reads it too (shared/kernel/settings.py)."""

    model_config = SettingsConfigDict(env_prefix="OBRUTEN_SCHOOL_SS12000_", extra="forbid", hide_input_in_errors=True)

    # The sources, as the module's doc shows. Empty: no intake runs.
    sources: list[dict[str, Any]] = Field(default_factory=list)
    # How often each source is asked for changes when no push wakes the intake earlier.
    poll_seconds: float = Field(default=300.0, gt=0)

