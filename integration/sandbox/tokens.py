"""OAuth grants: authorization codes, access tokens and single-use rotating refresh tokens.

Tokens are looked up by value (they are opaque random strings shaped like JWTs). Every method is
thread-safe; secrets never appear in exceptions or logs.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from integration.sandbox.errors import OAuthError
from integration.sandbox.ids import new_code, new_object_id, new_token

__all__ = ["Grant", "TokenStore"]

# A location token minted from a Company token gains these, whatever the app asked for (facts §1.3).
_LOCATION_TOKEN_EXTRA_SCOPES = ("oauth.readonly", "oauth.write")


@dataclass(frozen=True)
class Grant:
    """What a token stands for: who installed, for which agency or sub-account, with which scopes."""

    user_type: str  # "Company" or "Location"
    company_id: str
    location_id: str | None
    scopes: frozenset[str]
    user_id: str
    client_id: str
    is_bulk: bool = False
    approved_locations: tuple[str, ...] = ()
    # Identifies one chain of rotating refresh tokens (HighLevel's refreshTokenId).
    family: str = field(default_factory=new_object_id)

    @property
    def resource_id(self) -> str:
        return self.location_id if self.user_type == "Location" and self.location_id else self.company_id

    @property
    def scope(self) -> str:
        return " ".join(sorted(self.scopes))


@dataclass
class _AccessToken:
    grant: Grant
    expires_at: float


@dataclass
class _Code:
    grant: Grant
    redirect_uri: str | None
    expires_at: float


class TokenStore:
    """The sandbox's authorization server state."""

    def __init__(self, clock=time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, Grant] = {}

    def reset(self) -> None:
        with self._lock:
            self._codes.clear()
            self._access.clear()
            self._refresh.clear()

    # -- authorization codes -------------------------------------------------------------------------

    def issue_code(self, grant: Grant, *, redirect_uri: str | None, ttl: float) -> str:
        code = new_code()
        with self._lock:
            self._codes[code] = _Code(grant, redirect_uri, self._clock() + ttl)
        return code

    def exchange_code(self, *, code: str, client_id: str, client_secret: str, expected_secret: str,
                      redirect_uri: str | None, ttl: int) -> dict:
        """Trade a code for tokens once. Like HighLevel, the code is checked before the credentials."""
        with self._lock:
            entry = self._codes.get(code)
            if entry is None:
                raise OAuthError("Authorization code not found")
            if client_id != entry.grant.client_id or client_secret != expected_secret:
                raise OAuthError("Invalid client credentials!")
            if entry.expires_at <= self._clock():
                del self._codes[code]
                raise OAuthError("Authorization code expired")
            if redirect_uri and entry.redirect_uri and redirect_uri != entry.redirect_uri:
                raise OAuthError("Invalid redirect uri")
            del self._codes[code]
            return self._issue_pair(entry.grant, ttl=ttl)

    # -- refresh ---------------------------------------------------------------------------------------

    def refresh(self, *, refresh_token: str, client_id: str, client_secret: str, expected_client_id: str,
                expected_secret: str, user_type: str | None, ttl: int) -> dict:
        """Rotate: the old refresh token dies, a new pair is born. Reuse is rejected with 401."""
        if client_id != expected_client_id or client_secret != expected_secret:
            raise OAuthError("Invalid client credentials!")
        with self._lock:
            grant = self._refresh.pop(refresh_token, None)
            if grant is None:
                raise OAuthError("Invalid refresh token")
            if user_type and user_type != grant.user_type:
                # Put it back: a malformed request must not burn the caller's only refresh token.
                self._refresh[refresh_token] = grant
                raise OAuthError(f"user_type {user_type} does not match the refresh token", status=400,
                                 error="Bad Request")
            return self._issue_pair(grant, ttl=ttl)

    # -- location tokens -----------------------------------------------------------------------------

    def mint_location_token(self, company_grant: Grant, *, location_id: str, user_id: str, ttl: int) -> dict:
        """A Location token (with its own refresh token) minted from an agency's Company token."""
        grant = Grant(
            user_type="Location", company_id=company_grant.company_id, location_id=location_id,
            scopes=company_grant.scopes | frozenset(_LOCATION_TOKEN_EXTRA_SCOPES), user_id=user_id,
            client_id=company_grant.client_id,
        )
        with self._lock:
            body = self._issue_pair(grant, ttl=ttl)
        app_id = grant.client_id.split("-", 1)[0]
        body.update(appId=app_id, versionId=app_id)
        return body

    # -- resource access -----------------------------------------------------------------------------

    def authenticate(self, access_token: str) -> Grant | None:
        """The grant behind a live access token, or None (unknown, expired or revoked)."""
        with self._lock:
            entry = self._access.get(access_token)
            if entry is None:
                return None
            if entry.expires_at <= self._clock():
                return None
            return entry.grant

    def peek_resource(self, access_token: str) -> str | None:
        with self._lock:
            entry = self._access.get(access_token)
            return entry.grant.resource_id if entry else None

    def expire_resource(self, resource_id: str) -> int:
        """Make every access token for an agency or sub-account expired (refresh tokens stay valid)."""
        now = self._clock()
        count = 0
        with self._lock:
            for entry in self._access.values():
                if entry.grant.resource_id == resource_id and entry.expires_at > now:
                    entry.expires_at = now
                    count += 1
        return count

    def revoke_resource(self, resource_id: str) -> None:
        """Uninstall: every access and refresh token for the resource stops working."""
        with self._lock:
            for token in [t for t, e in self._access.items() if e.grant.resource_id == resource_id]:
                del self._access[token]
            for token in [t for t, g in self._refresh.items() if g.resource_id == resource_id]:
                del self._refresh[token]

    def live_grants(self) -> list[Grant]:
        """Grants that still hold a usable refresh token (for the UI; no token values)."""
        with self._lock:
            return list(self._refresh.values())

    # -- internals -----------------------------------------------------------------------------------

    def _issue_pair(self, grant: Grant, *, ttl: int) -> dict:
        claims = {"authClass": grant.user_type, "authClassId": grant.resource_id, "source": "INTEGRATION",
                  "sourceId": grant.client_id, "channel": "OAUTH"}
        access_token = new_token(claims)
        refresh_token = new_token(dict(claims, refresh=True))
        self._access[access_token] = _AccessToken(grant, self._clock() + ttl)
        self._refresh[refresh_token] = grant
        body: dict = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": ttl,
            "refresh_token": refresh_token,
            "scope": grant.scope,
            "refreshTokenId": grant.family,
            "userType": grant.user_type,
            "companyId": grant.company_id,
            "isBulkInstallation": grant.is_bulk,
            "userId": grant.user_id,
            "traceId": str(uuid.uuid4()),
        }
        if grant.user_type == "Location":
            body["locationId"] = grant.location_id
        else:
            body["approvedLocations"] = list(grant.approved_locations)
            body["installToFutureLocations"] = grant.is_bulk
            body["approveAllLocations"] = grant.is_bulk
        return body
