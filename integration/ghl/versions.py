"""The `Version` header each HighLevel service expects (shared/ghl-api-facts.md §0).

The values are the ones each service's official spec lists in the enum of its `Version` header.
HighLevel answers 401 "version header was not found." without it, so every resource call sends one;
only `/oauth/token` (client credentials in the form body, no bearer) takes none.
"""

from __future__ import annotations

__all__ = ["DEFAULT_VERSION", "SERVICE_VERSIONS", "version_for"]

DEFAULT_VERSION = "2021-07-28"

# First path segment -> Version value, as listed in integration/ghl/openapi/apps/<service>.json.
SERVICE_VERSIONS: dict[str, str] = {
    "conversations": "2021-04-15",
    "calendars": "2021-04-15",
    "contacts": "2021-07-28",
    "opportunities": "2021-07-28",
    "locations": "2021-07-28",
    "users": "2021-07-28",
    "oauth": "2021-07-28",
    "marketplace": "2021-07-28",
}

# Paths that must not carry a Version header (the spec lists no parameters for them).
UNVERSIONED_PATHS = frozenset({"/oauth/token"})


def version_for(path: str) -> str | None:
    """The Version header value for an API path, or None when the endpoint takes none."""
    if path in UNVERSIONED_PATHS:
        return None
    service = path.lstrip("/").split("/", 1)[0]
    return SERVICE_VERSIONS.get(service, DEFAULT_VERSION)
