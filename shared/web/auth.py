"""The one authentication seam: every /v1 route depends on `authenticate`.

Bearer JWTs from the city's identity provider are verified against a configured public key
or JWKS URL (issuer, audience and expiry checked). The embedded default makes a local key
pair and mints development tokens with `obruten token`.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shared.kernel.settings import Settings
from shared.web.runtime import runtime
from shared.web.schemas import ShortText


class Role(StrEnum):
    admin = "admin"
    caseworker = "caseworker"
    district_manager = "district_manager"
    school_coordinator = "school_coordinator"
    protected_teaching = "protected_teaching"
    health_staff = "health_staff"
    central_analyst = "central_analyst"
    service = "service"


class Principal(BaseModel):
    subject: str
    roles: frozenset[Role]
    district: str | None = None

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles))


_RoleName = Annotated[str, StringConstraints(max_length=64)]


class Claims(BaseModel):
    """The claims Obruten reads, as a validly signed token must carry them: anything else (roles
    null, a number, a list of lists; a subject or district with control characters) is a 401."""

    model_config = ConfigDict(extra="ignore")

    sub: Annotated[ShortText, StringConstraints(min_length=1)]
    # A list of role names, or one string of them separated by spaces.
    roles: Annotated[list[_RoleName], Field(max_length=32)] | Annotated[str, StringConstraints(max_length=2000)] = (
        Field(default_factory=list)
    )
    district: ShortText | None = None


# Verified tokens remembered at once, by the hash of the token: a client presents the same token
# on every request, and the signature check (ES256, about 0.45 ms) is then done once per token.
VERIFIED_CACHE_SIZE = 10_000


class Authenticator:
    """Verifies bearer tokens; a verified token is remembered (by its sha256, never the token
    itself) until its `exp`, so each token's signature is checked once. The cache is bounded
    (least recently used first out) and honours expiry exactly: an entry is used only while
    `time.time() < exp`, which is PyJWT's own rule without leeway."""

    def __init__(self, settings: Settings, *, cache_size: int = VERIFIED_CACHE_SIZE) -> None:
        self.settings = settings
        self.cache_size = cache_size
        # sha256(token) -> (exp, principal). A lock: the web service verifies in a thread pool.
        self._verified: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()
        # Signature checks done (not cache hits): what shows that a hit does not verify again.
        self.signature_checks = 0
        self._key: Any = None
        self._jwks: jwt.PyJWKClient | None = None
        if settings.jwt_jwks_url:
            self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True)
        elif settings.jwt_public_key_file:
            self._key = settings.jwt_public_key_file.read_bytes()

    def verify(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            cached = self._verified.get(digest)
            if cached is not None:
                if time.time() < cached[0]:
                    self._verified.move_to_end(digest)
                    return cached[1]
                del self._verified[digest]
        claims = self._decode(token)
        principal = principal_from_claims(claims, self.settings)
        exp = claims.get("exp")
        if isinstance(exp, int | float):
            with self._lock:
                self._verified[digest] = (float(exp), principal)
                if len(self._verified) > self.cache_size:
                    self._verified.popitem(last=False)
        return principal

    def _decode(self, token: str) -> dict[str, Any]:
        self.signature_checks += 1
        if self._jwks is not None:
            key: Any = jwks_signing_key(self._jwks, token)
        elif self._key is not None:
            key = self._key
        else:
            raise jwt.InvalidTokenError("no verification key configured")
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=self.settings.jwt_algorithms,
            audience=self.settings.jwt_audience,
            issuer=self.settings.jwt_issuer,
            options={"require": ["exp", "iat", "sub"]},
        )
        return claims


def jwks_signing_key(client: jwt.PyJWKClient, token: str) -> Any:
    """The key that signed `token`: the one its `kid` names, or, for a token without one (some
    providers leave it out), the provider's only signing key."""
    if jwt.get_unverified_header(token).get("kid") is None:
        keys = client.get_signing_keys()
        if len(keys) == 1:
            return keys[0].key
    return client.get_signing_key_from_jwt(token).key


def principal_from_claims(claims: dict[str, Any], settings: Settings) -> Principal:
    """Who a verified token speaks for: roles and district from the configured claims
    (jwt_roles_claim, jwt_district_claim), validated as `Claims`."""
    picked: dict[str, Any] = {"sub": claims.get("sub")}
    for name, claim in (("roles", settings.jwt_roles_claim), ("district", settings.jwt_district_claim)):
        if claim in claims:
            picked[name] = claims[claim]
    try:
        parsed = Claims.model_validate(picked)
    except ValidationError:
        # The claims' values stay out of the answer and the logs.
        raise jwt.InvalidTokenError("malformed claims") from None
    raw_roles = parsed.roles.split() if isinstance(parsed.roles, str) else parsed.roles
    roles = frozenset(Role(r) for r in raw_roles if r in Role.__members__)
    return Principal(subject=parsed.sub, roles=roles, district=parsed.district)


_bearer = HTTPBearer(auto_error=False)


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    challenge = {"WWW-Authenticate": 'Bearer realm="obruten"'}
    if credentials is None:
        raise HTTPException(401, "Missing bearer token", headers=challenge)
    authenticator: Authenticator = runtime(request.app).authenticator
    # The rate limit (shared/web/hardening.py) verified this very token already.
    verified = getattr(request.state, "verified_token", None)
    if verified is not None and verified[0] == credentials.credentials:
        principal: Principal = verified[1]
    else:
        try:
            principal = authenticator.verify(credentials.credentials)
        except (jwt.PyJWTError, ValueError) as exc:
            raise HTTPException(401, f"Invalid token: {exc}", headers=challenge) from exc
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def generate_keypair(directory: Path) -> tuple[Path, Path]:
    """An ES256 key pair for the embedded default; kept if it already exists."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path, public_path = directory / "jwt-private.pem", directory / "jwt-public.pem"
    if not private_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        private_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        private_path.chmod(0o600)
        public_path.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return private_path, public_path


def mint_token(
    private_key_pem: bytes,
    *,
    subject: str,
    roles: list[str],
    district: str | None = None,
    issuer: str,
    audience: str,
    ttl_seconds: int = 8 * 3600,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "roles": roles,
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": str(uuid.uuid4()),
    }
    if district:
        claims["district"] = district
    return jwt.encode(claims, private_key_pem, algorithm="ES256")
