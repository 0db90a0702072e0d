"""Sign-in sessions, kept in this process's memory.

Why in memory and not a signed cookie: the person's bearer token is what every page calls the
services with, and it must never reach the browser (a cookie, even HttpOnly, travels with every
request and sits in the browser's store). The cookie holds only a random session id. The price:
a restart signs everyone out and the service runs as one replica; a shared store (e.g. Redis)
would lift that without changing the callers of this module.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from fastapi import Request, Response

from services.web.settings import WebSettings
from shared.web.auth import Principal

SESSION_COOKIE = "obruten_session"
LOGIN_COOKIE = "obruten_login"
# An unfinished sign-in (at the identity provider, or the development form) waits this long.
LOGIN_TTL_SECONDS = 600


@dataclass
class WebSession:
    principal: Principal
    token: str
    expires_at: float
    development: bool
    email: str | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    last_seen: float = field(default_factory=time.monotonic)
    # Short-lived answers of the services (child, placement, schooling) for the inbox's refresh.
    cache: dict[str, tuple[float, object]] = field(default_factory=dict)


@dataclass
class PendingLogin:
    """A sign-in under way: OIDC state, PKCE verifier and nonce, or the development form's CSRF value."""

    csrf: str
    code_verifier: str | None = None
    nonce: str | None = None
    # Where to go once signed in (a path on this site, e.g. a mail's link to an alert).
    next: str | None = None
    created: float = field(default_factory=time.monotonic)


class SessionStore:
    def __init__(self, config: WebSettings) -> None:
        self.idle_seconds = config.session_idle_minutes * 60
        self.secure = not config.plain_http
        self._sessions: dict[str, WebSession] = {}
        self._pending: dict[str, PendingLogin] = {}

    # --- signed-in sessions ------------------------------------------------------------------

    def create(self, response: Response, session: WebSession) -> str:
        self._sweep()
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = session
        self._set_cookie(response, SESSION_COOKIE, sid)
        return sid

    def current(self, request: Request) -> WebSession | None:
        """The request's live session: touched now, or dropped when idle too long or its token expired."""
        sid = request.cookies.get(SESSION_COOKIE)
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.idle_seconds or time.time() >= session.expires_at:
            self._sessions.pop(sid, None)
            return None
        session.last_seen = now
        return session

    def end(self, request: Request, response: Response) -> None:
        sid = request.cookies.get(SESSION_COOKIE)
        if sid:
            self._sessions.pop(sid, None)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=self.secure, httponly=True, samesite="lax")

    # --- sign-ins under way ------------------------------------------------------------------

    def begin_login(self, response: Response, pending: PendingLogin) -> str:
        self._sweep()
        key = secrets.token_urlsafe(32)
        self._pending[key] = pending
        self._set_cookie(response, LOGIN_COOKIE, key, max_age=LOGIN_TTL_SECONDS)
        return key

    def pending_login(self, request: Request, *, consume: bool) -> PendingLogin | None:
        key = request.cookies.get(LOGIN_COOKIE)
        if not key:
            return None
        pending = self._pending.pop(key, None) if consume else self._pending.get(key)
        if pending is None or time.monotonic() - pending.created > LOGIN_TTL_SECONDS:
            return None
        return pending

    # --- helpers -----------------------------------------------------------------------------

    def _set_cookie(self, response: Response, name: str, value: str, max_age: int | None = None) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self.secure, httponly=True, samesite="lax")

    def _sweep(self) -> None:
        now = time.monotonic()
        for sid, s in list(self._sessions.items()):
            if now - s.last_seen > self.idle_seconds or time.time() >= s.expires_at:
                del self._sessions[sid]
        for key, p in list(self._pending.items()):
            if now - p.created > LOGIN_TTL_SECONDS:
                del self._pending[key]


def safe_next(value: str | None) -> str | None:
    """A path on this site, never another site (`//host`, `https:`) nor a header trick."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ch in value for ch in "\r\n") or len(value) > 200:
        return None
    return value


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
