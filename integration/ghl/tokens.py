"""How the API client gets bearer tokens: an injected provider, so the client never stores tokens.

The production provider lives in `oauth/` (it decrypts the stored installation, refreshes under a
per-installation lock and persists the rotated pair). The client only calls these two methods.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from integration.ghl.errors import GHLUnauthorized

__all__ = ["StaticTokenProvider", "TokenProvider"]


@runtime_checkable
class TokenProvider(Protocol):
    """Gives the client an access token for a resource (a location id, or a company id for agency calls)."""

    def access_token(self, resource_id: str) -> str:
        """A current access token for the resource; may refresh first if it is known to be expired."""
        ...

    def refresh_after_unauthorized(self, resource_id: str, rejected_token: str) -> str:
        """HighLevel answered 401 to `rejected_token`: return a fresh token (refreshing unless another
        worker already did), or raise when the installation cannot be refreshed."""
        ...


class StaticTokenProvider:
    """A provider over a dict of tokens, with an optional refresh callback.

    For scripts, benchmarks and tests: `refresh(resource_id) -> new_token` is called after a 401 and its
    result replaces the stored token. Without a callback a 401 is final (GHLUnauthorized).
    """

    def __init__(self, tokens: dict[str, str] | None = None, *,
                 refresh: Callable[[str], str] | None = None) -> None:
        self._tokens = dict(tokens or {})
        self._refresh = refresh
        self._lock = threading.Lock()
        self.refresh_count = 0

    def __repr__(self) -> str:
        # Tokens are secrets: show which resources we hold tokens for, never the tokens.
        return f"StaticTokenProvider(resources={sorted(self._tokens)!r})"

    def set_token(self, resource_id: str, token: str) -> None:
        with self._lock:
            self._tokens[resource_id] = token

    def access_token(self, resource_id: str) -> str:
        with self._lock:
            try:
                return self._tokens[resource_id]
            except KeyError:
                raise LookupError(f"no access token for resource {resource_id}") from None

    def refresh_after_unauthorized(self, resource_id: str, rejected_token: str) -> str:
        with self._lock:
            current = self._tokens.get(resource_id)
            if current is not None and current != rejected_token:
                return current  # someone refreshed while our request was in flight
            if self._refresh is None:
                raise GHLUnauthorized(f"the token for resource {resource_id} was rejected and cannot be refreshed",
                                      status=401)
            token = self._refresh(resource_id)
            self._tokens[resource_id] = token
            self.refresh_count += 1
            return token
