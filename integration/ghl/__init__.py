"""HighLevel API v2: the client, its typed errors, the token-provider protocol, the shared rate limiter.

The vendored official specs (openapi/) and webhook examples (webhook_examples/) live beside it;
`integration.ghl.contract` validates traffic against the specs (used by the test suite).
"""

from integration.ghl.client import GHLClient, client_from_settings
from integration.ghl.errors import (
    GHLBadResponse,
    GHLConnectionError,
    GHLError,
    GHLForbidden,
    GHLNotFound,
    GHLRateLimited,
    GHLServerError,
    GHLTimeout,
    GHLUnauthorized,
    GHLValidationError,
    OAuthError,
)
from integration.ghl.ratelimit import RedisRateLimiter
from integration.ghl.tokens import StaticTokenProvider, TokenProvider
from integration.ghl.versions import version_for

__all__ = [
    "GHLBadResponse",
    "GHLClient",
    "GHLConnectionError",
    "GHLError",
    "GHLForbidden",
    "GHLNotFound",
    "GHLRateLimited",
    "GHLServerError",
    "GHLTimeout",
    "GHLUnauthorized",
    "GHLValidationError",
    "OAuthError",
    "RedisRateLimiter",
    "StaticTokenProvider",
    "TokenProvider",
    "client_from_settings",
    "version_for",
]
