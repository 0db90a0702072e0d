"""The web service's own settings: environment OBRUTEN_WEB_…, read by this class itself rather
than carried by the shared settings (its port and public address, which other services need,
are there: web_port, web_url)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebSettings(BaseSettings):
    # A misspelt keyword is refused; an unknown OBRUTEN_WEB_ variable is not read.
    model_config = SettingsConfigDict(env_prefix="OBRUTEN_WEB_", extra="forbid")

    # Sign-in with OpenID Connect (authorization code and PKCE) when an issuer is set; without
    # one, the development sign-in page, which mints tokens with jwt_private_key_file and cannot
    # exist while an issuer is set.
    oidc_issuer: str | None = None
    oidc_client_id: str = "obruten"
    oidc_client_secret: str | None = None
    oidc_scope: str = "openid email profile"
    # Which of the provider's tokens the services are called with: an access token that is a JWT
    # for audience jwt_audience (the usual), or the ID token (providers whose access tokens are
    # opaque; its audience is then the client id, so set jwt_audience to it).
    oidc_api_token: Literal["access_token", "id_token"] = "access_token"
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Session cookies are Secure unless the service is explicitly served over plain http on this
    # machine (`obruten run` sets it for its loopback address).
    plain_http: bool = False
    # How often the inbox asks for changes, in seconds.
    refresh_seconds: float = Field(default=2.0, gt=0)

    @field_validator("oidc_issuer", "oidc_client_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker-compose passes an unset variable as an empty string.
        return None if value == "" else value

