"""The verified-token cache (shared/web/auth.py): a token's signature is checked once, and a
token is never accepted once its `exp` has passed, cached or not."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from shared.kernel.settings import Settings
from shared.web.auth import Authenticator, mint_token


def _authenticator(keys: tuple[Path, Path], **kwargs: int) -> tuple[Authenticator, Settings]:
    settings = Settings(jwt_public_key_file=keys[1])
    return Authenticator(settings, **kwargs), settings


def _token(keys: tuple[Path, Path], settings: Settings, subject: str, ttl: int = 3600) -> str:
    return mint_token(
        keys[0].read_bytes(),
        subject=subject,
        roles=["caseworker"],
        district="Farsta",
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=ttl,
    )


def test_a_cached_token_is_not_verified_again(keys: tuple[Path, Path]) -> None:
    auth, settings = _authenticator(keys)
    token = _token(keys, settings, "cw-1")
    first = auth.verify(token)
    assert auth.signature_checks == 1
    for _ in range(5):
        assert auth.verify(token) == first
    assert auth.signature_checks == 1, "a cache hit does not check the signature again"
    other = auth.verify(_token(keys, settings, "cw-2"))
    assert other.subject == "cw-2" and auth.signature_checks == 2


def test_an_expired_cached_token_is_refused(keys: tuple[Path, Path]) -> None:
    auth, settings = _authenticator(keys)
    token = _token(keys, settings, "cw-short", ttl=2)
    assert auth.verify(token).subject == "cw-short"
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, exp - time.time()) + 0.05)
    with pytest.raises(jwt.ExpiredSignatureError):
        auth.verify(token)
    with pytest.raises(jwt.ExpiredSignatureError):
        auth.verify(token)
    assert auth.signature_checks == 3, "an expired entry is not answered from the cache"


def test_a_token_failing_verification_is_never_cached(keys: tuple[Path, Path]) -> None:
    auth, settings = _authenticator(keys)
    token = _token(keys, settings, "cw-3")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for _ in range(2):
        with pytest.raises(jwt.InvalidTokenError):
            auth.verify(tampered)
    assert auth.signature_checks == 2
    assert auth.verify(token).subject == "cw-3"


def test_the_cache_is_bounded(keys: tuple[Path, Path]) -> None:
    auth, settings = _authenticator(keys, cache_size=2)
    tokens = [_token(keys, settings, f"cw-{n}") for n in range(3)]
    for token in tokens:
        auth.verify(token)
    assert auth.signature_checks == 3
    auth.verify(tokens[2])
    assert auth.signature_checks == 3, "the newest stays"
    auth.verify(tokens[0])
    assert auth.signature_checks == 4, "the oldest was dropped when the third came"
