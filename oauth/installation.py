"""`TokenGrant`: one answer of HighLevel's token endpoints, checked and turned into a value object.

The code exchange, a refresh and `/oauth/locationToken` all answer with the same family of fields
(ghl-api-facts §1.2, §1.3). Building a TokenGrant is where a malformed answer is caught, before
anything is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = ["COMPANY", "LOCATION", "MalformedTokenResponse", "TokenGrant"]

COMPANY = "Company"
LOCATION = "Location"

# HighLevel says 86399 s; a missing or silly value must not make us treat a token as eternal.
_DEFAULT_EXPIRES_IN = 86399
_MAX_EXPIRES_IN = 7 * 86400


class MalformedTokenResponse(ValueError):
    """HighLevel's token answer lacks a field we need. The message names fields, never values."""


@dataclass(frozen=True)
class TokenGrant:
    """Tokens and facts from one token-endpoint answer. Tokens are excluded from repr."""

    user_type: str
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    company_id: str | None
    location_id: str | None
    scope: str | None = None
    user_id: str | None = None
    is_bulk_installation: bool = False
    install_to_future_locations: bool | None = None

    @property
    def resource_id(self) -> str:
        """The id the token acts for: the location for a Location token, else the company."""
        return self.location_id if self.user_type == LOCATION else self.company_id  # type: ignore[return-value]

    @classmethod
    def from_response(cls, data: Mapping, *, now: datetime, expected_user_type: str | None = None) -> TokenGrant:
        """Validate a token-endpoint answer.

        Args:
            data: the decoded JSON answer.
            now: the moment the answer arrived (expiry is computed from it).
            expected_user_type: COMPANY or LOCATION when the caller knows which class it asked for
                (`/oauth/locationToken` answers may omit `userType`).

        Raises:
            MalformedTokenResponse: a required field is missing or of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise MalformedTokenResponse("the token answer is not a JSON object")
        access_token = data.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise MalformedTokenResponse("the token answer has no access_token")
        refresh_token = data.get("refresh_token")
        if refresh_token is not None and (not isinstance(refresh_token, str) or not refresh_token):
            raise MalformedTokenResponse("the token answer has an unusable refresh_token")
        user_type = data.get("userType") or expected_user_type
        if user_type not in (COMPANY, LOCATION):
            raise MalformedTokenResponse("the token answer has no usable userType (Company or Location)")
        if expected_user_type and user_type != expected_user_type:
            raise MalformedTokenResponse(f"expected a {expected_user_type} token, HighLevel gave a {user_type} token")
        company_id = _optional_id(data, "companyId")
        location_id = _optional_id(data, "locationId")
        if user_type == LOCATION and not location_id:
            raise MalformedTokenResponse("a Location token answer has no locationId")
        if user_type == COMPANY and not company_id:
            raise MalformedTokenResponse("a Company token answer has no companyId")
        expires_in = data.get("expires_in", _DEFAULT_EXPIRES_IN)
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
            raise MalformedTokenResponse("the token answer has no usable expires_in")
        return cls(
            user_type=user_type,
            access_token=access_token,
            refresh_token=refresh_token,
            expires_at=now + timedelta(seconds=min(float(expires_in), _MAX_EXPIRES_IN)),
            company_id=company_id,
            location_id=location_id if user_type == LOCATION else None,
            scope=data.get("scope") if isinstance(data.get("scope"), str) else None,
            user_id=_optional_id(data, "userId"),
            is_bulk_installation=bool(data.get("isBulkInstallation", False)),
            install_to_future_locations=(
                bool(data["installToFutureLocations"]) if "installToFutureLocations" in data else None
            ),
        )


def _optional_id(data: Mapping, key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise MalformedTokenResponse(f"the token answer has an unusable {key}")
    return value
