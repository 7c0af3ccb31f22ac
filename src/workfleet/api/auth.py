"""API keys and scopes, and the console's signed session.

Keys are configured as SHA-256 digests (``WORKFLEET_API__KEYS``), never as keys: a request's key
(``X-API-Key``, or ``Authorization: Bearer``) is hashed and compared with *every* configured
digest in constant time, so neither a match's position nor a near miss shows in the timing.
Scopes: ``read`` may use the GET routes; ``admin`` everything. ``/health`` and ``/livez`` need
no key.

The console cannot send a header from a link, so signing in there trades the key for a cookie:
``name|scope|expiry|mac``, an HMAC-SHA256 under the session secret (configured, or derived from
the configured digests so every replica of one release agrees). The key itself never leaves
the sign-in form. CSRF tokens are HMACs of the session cookie, checked on every console POST.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from workfleet.api.problems import Problem
from workfleet.settings import ApiKey, ApiSettings

Scope = Literal["read", "admin"]
SESSION_COOKIE = "workfleet_session"

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: the configured key's name (safe to log) and its scope."""

    name: str
    scope: Scope

    @property
    def admin(self) -> bool:
        return self.scope == "admin"


def digest(key: str) -> str:
    """The hex SHA-256 of an API key, as ``WORKFLEET_API__KEYS`` holds it."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class Keys:
    """The configured keys, and the console's session signing built on them."""

    def __init__(self, settings: ApiSettings) -> None:
        self.keys: tuple[ApiKey, ...] = tuple(settings.keys)
        self.session_seconds = settings.session_hours * 3600
        if settings.session_secret is not None:
            secret = settings.session_secret.get_secret_value().encode()
        else:
            material = "|".join(sorted(f"{k.name}:{k.scope}:{k.sha256}" for k in self.keys))
            secret = hashlib.sha256(b"workfleet-console-session|" + material.encode()).digest()
        self._secret = secret

    def check(self, presented: str) -> Principal | None:
        """The key's principal, or None; compares against every key whatever matches."""
        candidate = digest(presented).encode()
        found: ApiKey | None = None
        for key in self.keys:
            if hmac.compare_digest(candidate, key.sha256.encode()):
                found = key
        return None if found is None else Principal(found.name, found.scope)

    # --- console sessions ---------------------------------------------------------------------

    def _mac(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def session_cookie(self, principal: Principal, now: float | None = None) -> str:
        expiry = int((now or time.time()) + self.session_seconds)
        body = f"{principal.name}|{principal.scope}|{expiry}"
        return f"{body}|{self._mac(body)}"

    def session(self, cookie: str | None, now: float | None = None) -> Principal | None:
        """The principal of a valid, unexpired session cookie whose key is still configured."""
        if not cookie or cookie.count("|") != 3:
            return None
        name, scope, expiry, mac = cookie.split("|")
        if not hmac.compare_digest(mac, self._mac(f"{name}|{scope}|{expiry}")):
            return None
        if not expiry.isdigit() or int(expiry) < (now or time.time()):
            return None
        for key in self.keys:  # a key removed from configuration ends its sessions
            if key.name == name and key.scope == scope:
                return Principal(key.name, key.scope)
        return None

    def csrf_token(self, cookie: str) -> str:
        return self._mac(f"csrf|{cookie}")

    def check_csrf(self, cookie: str | None, token: str | None) -> bool:
        if not cookie or not token:
            return False
        return hmac.compare_digest(self.csrf_token(cookie), token)


def _keys(request: Request) -> Keys:
    keys: Keys = request.app.state.keys
    return keys


def principal(
    request: Request, header_key: Annotated[str | None, Depends(api_key_header)]
) -> Principal:
    """The caller, from ``X-API-Key`` or ``Authorization: Bearer``; 401 otherwise."""
    presented = header_key
    if presented is None:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            presented = token.strip()
    if presented is None:
        raise Problem(
            401,
            "an API key is required (X-API-Key header)",
            field="X-API-Key",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    found = _keys(request).check(presented)
    if found is None:
        raise Problem(
            401,
            "the API key is not valid",
            field="X-API-Key",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    request.state.principal = found
    return found


def reader(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """Any valid key (read or admin scope)."""
    return who


def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """A key with the admin scope; 403 for a read-only key."""
    if not who.admin:
        raise Problem(403, f"key {who.name!r} is read-only; this action needs the admin scope")
    return who


Reader = Annotated[Principal, Depends(reader)]
Admin = Annotated[Principal, Depends(admin)]
