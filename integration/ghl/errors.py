"""Typed errors for every way a HighLevel call can fail.

Each error carries HighLevel's own message (or, when the answer was unreadable, a sentence naming
what was wrong with it), the HTTP status, the trace id and the method and path of the call. Never
the token, the client secret or a request body: error messages end up in logs and on pages.

`is_ambiguous` answers the question the exactly-once sender must ask before retrying: "may the
request have taken effect?". It is True for a timeout, a connection lost after the request was
sent, a 5xx, and an unreadable 2xx answer. It is False when HighLevel rejected the request (4xx,
including 429, which HighLevel answers before processing anything).
"""

from __future__ import annotations

__all__ = [
    "GHLBadResponse",
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
    "error_for_status",
]


class GHLError(Exception):
    """Base class: a HighLevel call failed. `str(error)` is safe to log and to show an operator."""

    #: Default for the class; a specific instance may override it (see GHLConnectionError).
    ambiguous_by_default = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        trace_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
        is_ambiguous: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.trace_id = trace_id
        self.method = method
        self.path = path
        self.is_ambiguous = self.ambiguous_by_default if is_ambiguous is None else is_ambiguous

    def __str__(self) -> str:
        where = f"{self.method} {self.path}" if self.method and self.path else "HighLevel call"
        status = f" -> {self.status}" if self.status is not None else ""
        trace = f" (traceId {self.trace_id})" if self.trace_id else ""
        return f"{where}{status}: {self.message}{trace}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, is_ambiguous={self.is_ambiguous})"


class GHLUnauthorized(GHLError):
    """401: the token is missing, expired, revoked, of the wrong class, or lacks the scope."""


class GHLForbidden(GHLError):
    """403: the token is valid but may not touch this resource (e.g. another location)."""


class GHLNotFound(GHLError):
    """404: the resource (contact, conversation, opportunity...) does not exist."""


class GHLValidationError(GHLError):
    """400 or 422: HighLevel refused the request body or parameters.

    `errors` holds every validation message (HighLevel sends a list for 422); `message` joins them.
    """

    def __init__(self, message: str, *, errors: list[str] | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.errors = list(errors) if errors else [message]


class GHLRateLimited(GHLError):
    """429, or our own limiter could not get a slot in time. `retry_after` is in seconds (None: unknown).

    Never ambiguous: a 429 means HighLevel did not process the request.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class GHLServerError(GHLError):
    """5xx: HighLevel failed. The request may or may not have taken effect."""

    ambiguous_by_default = True


class GHLTimeout(GHLError):
    """No answer within the timeout. Ambiguous unless the connection was never established."""

    ambiguous_by_default = True


class GHLConnectionError(GHLError):
    """The connection failed or was reset. Ambiguous unless it failed before the request was sent."""

    ambiguous_by_default = True


class GHLBadResponse(GHLError):
    """HighLevel's answer could not be used: not JSON, an HTML page, empty, or missing required fields.

    For a 2xx status the request did take effect, so the error is ambiguous (the caller cannot know
    the ids it created); for an error status it is whatever that status implies.
    """

    ambiguous_by_default = True


class OAuthError(GHLError):
    """The token endpoint refused: `{"error": ..., "error_description": ...}` (bad code, reused refresh token,
    bad client credentials). Never retried: a refresh token is single-use."""

    def __init__(self, message: str, *, error: str | None = None, error_description: str | None = None,
                 **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.error = error
        self.error_description = error_description


def error_for_status(status: int) -> type[GHLError]:
    """The error class for an HTTP error status."""
    if status == 401:
        return GHLUnauthorized
    if status == 403:
        return GHLForbidden
    if status == 404:
        return GHLNotFound
    if status in (400, 422):
        return GHLValidationError
    if status == 429:
        return GHLRateLimited
    if status >= 500:
        return GHLServerError
    return GHLError
