"""Why a token cannot be had: typed errors every caller of the TokenProvider can act on.

None of these is a `GHLError`, on purpose: a job that catches `GHLError` and asks `is_ambiguous`
("may my request have reached HighLevel?") must not mistake "we could not even get a token" for an
ambiguous send. None of them ever carries a token in its message.
"""

from __future__ import annotations

__all__ = [
    "InstallationInactive",
    "InstallationNotFound",
    "NeedsReconnect",
    "TokenDecryptError",
    "TokenRefreshUnavailable",
    "TokenRejected",
    "TokenUnavailable",
]


class TokenUnavailable(Exception):
    """Base class: no usable access token for `resource_id`. `retryable` says whether trying later can help."""

    retryable = False

    def __init__(self, message: str, *, resource_id: str | None = None) -> None:
        super().__init__(message)
        self.resource_id = resource_id


class InstallationNotFound(TokenUnavailable):
    """We hold no installation for this location or company (never installed, or not provisioned yet)."""


class InstallationInactive(TokenUnavailable):
    """The app was uninstalled (or an UNINSTALL for it is waiting in the inbox): no API call may be made."""


class NeedsReconnect(TokenUnavailable):
    """HighLevel rejected the refresh (or the stored token is unreadable): a person must reinstall the app."""


class TokenRejected(TokenUnavailable):
    """HighLevel rejects a token we refreshed moments ago: a missing scope or revoked access, not expiry.

    Refreshing again would not help and would spend a refresh token per API call, so we stop here.
    """


class TokenRefreshUnavailable(TokenUnavailable):
    """A refresh could not be done right now (HighLevel down or slow, lock busy); nothing was lost. Retry later."""

    retryable = True


class TokenDecryptError(Exception):
    """A stored ciphertext does not decrypt with any configured key (key removed too early, or corruption)."""
