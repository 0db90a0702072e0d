"""OpenID Connect sign-in: authorization code flow with PKCE (S256), through Authlib.

The provider's discovery document names its endpoints and keys. The ID token is verified
(signature, issuer, audience = our client id, expiry, nonce); the token the services are called
with is verified the way the services verify it (shared.auth.Authenticator), so the roles and
district the pages show are the ones the services will enforce.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from authlib.common.security import generate_token

from services.web.settings import WebSettings
from shared.web.auth import jwks_signing_key


class SignInFailed(Exception):
    """The provider's answer could not be trusted or used; the reason is for the log, not the page."""


@dataclass
class Tokens:
    api_token: str
    id_claims: dict[str, Any]


class OidcClient:
    def __init__(self, settings: WebSettings, redirect_uri: str) -> None:
        if not settings.oidc_issuer:
            raise ValueError("no OIDC issuer configured")
        self.settings = settings
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.redirect_uri = redirect_uri
        self._metadata: dict[str, Any] | None = None
        self._jwks: jwt.PyJWKClient | None = None

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            async with httpx.AsyncClient(timeout=10) as client:
                resp = await client.get(f"{self.issuer}/.well-known/openid-configuration")
                resp.raise_for_status()
                self._metadata = resp.json()
            self._jwks = jwt.PyJWKClient(self._metadata["jwks_uri"], cache_keys=True)
        return self._metadata

    def _client(self) -> Any:
        # Imported here: the module warns of a deprecation on import, which every `obruten`
        # command (they load the service registry) would otherwise print.
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        s = self.settings
        return AsyncOAuth2Client(
            client_id=s.oidc_client_id,
            client_secret=s.oidc_client_secret,
            scope=s.oidc_scope,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic" if s.oidc_client_secret else "none",
            timeout=10,
        )

    @staticmethod
    def new_secrets() -> tuple[str, str, str]:
        """state, PKCE code verifier, nonce."""
        return generate_token(32), generate_token(64), generate_token(32)

    async def authorization_url(self, state: str, code_verifier: str, nonce: str) -> str:
        meta = await self.metadata()
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                meta["authorization_endpoint"], state=state, code_verifier=code_verifier, nonce=nonce
            )
        return str(url)

    async def exchange(self, code: str, code_verifier: str, nonce: str) -> Tokens:
        meta = await self.metadata()
        async with self._client() as client:
            try:
                token = await client.fetch_token(
                    meta["token_endpoint"], code=code, code_verifier=code_verifier, grant_type="authorization_code"
                )
            except Exception as exc:
                raise SignInFailed(f"token endpoint refused: {type(exc).__name__}") from exc
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("no ID token in the provider's answer")
        claims = await asyncio.to_thread(self._verify_id_token, id_token, meta)
        if claims.get("nonce") != nonce:
            raise SignInFailed("ID token nonce does not match")
        api_token = id_token if self.settings.oidc_api_token == "id_token" else token.get("access_token")
        if not isinstance(api_token, str):
            raise SignInFailed("no access token in the provider's answer")
        return Tokens(api_token=api_token, id_claims=claims)

    def _verify_id_token(self, id_token: str, meta: dict[str, Any]) -> dict[str, Any]:
        assert self._jwks is not None
        try:
            key = jwks_signing_key(self._jwks, id_token)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key,
                algorithms=["RS256", "ES256", "PS256"],
                audience=self.settings.oidc_client_id,
                issuer=meta.get("issuer", self.issuer),
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise SignInFailed(f"ID token refused: {type(exc).__name__}") from exc
        return claims
