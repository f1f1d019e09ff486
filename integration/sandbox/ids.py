"""Identifier, token and timestamp helpers shaped like HighLevel's."""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
from datetime import UTC, datetime, timedelta

__all__ = ["iso", "new_code", "new_id", "new_object_id", "new_token", "set_clock_offset", "utcnow"]

_ALPHANUMERIC = string.ascii_letters + string.digits


def new_id() -> str:
    """A 20-character alphanumeric id, like HighLevel's location, contact and message ids."""
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(20))


def new_object_id() -> str:
    """A 24-hex id, like the Mongo ObjectIds HighLevel uses for refreshTokenId and app ids."""
    return f"{int(time.time()):08x}{secrets.token_hex(8)}"


def new_code() -> str:
    """An authorization code: 40 hex characters, as real codes look."""
    return secrets.token_hex(20)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def new_token(claims: dict) -> str:
    """An opaque bearer token shaped like HighLevel's RS256 JWTs (same length and alphabet).

    The sandbox looks tokens up by value, so the 'signature' is random bytes; clients must treat
    tokens as opaque anyway. The JWT shape also lets the app's log redaction recognise them.
    """
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = dict(claims, jti=secrets.token_hex(12), iat=int(time.time()))
    payload = _b64url(json.dumps(body, separators=(",", ":")).encode())
    return f"{header}.{payload}.{_b64url(secrets.token_bytes(256))}"


# The simulated HighLevel's clock may run ahead of (or behind) the real one: a benchmark plays conversations
# on a chosen day (a DST change, a late evening) with record times, free slots and bookings all at that time.
# Token lifetimes and request ids keep real time.
_clock_offset = timedelta(0)


def set_clock_offset(offset: timedelta) -> None:
    """Move the sandbox's business clock by `offset` from real time (timedelta(0): real time again)."""
    global _clock_offset
    _clock_offset = offset


def utcnow() -> datetime:
    """The sandbox's business clock: real UTC time plus the offset set for it."""
    return datetime.now(UTC) + _clock_offset


def iso(moment: datetime | None = None) -> str:
    """ISO-8601 in UTC with milliseconds and a Z, as HighLevel writes dates."""
    moment = (moment or utcnow()).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
