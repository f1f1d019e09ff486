"""Exceptions a webhook handler raises to tell `process_event` what happened.

Any other exception means "this attempt failed, try again later" (with backoff, up to
EVENT_MAX_ATTEMPTS). These three say something more precise; each carries a reason a person can read,
stored on the inbox row.
"""

from __future__ import annotations

__all__ = ["EventIgnored", "PermanentEventError", "RetryLater"]


class EventIgnored(Exception):
    """Nothing to do for this event (e.g. an outbound call); the row becomes `ignored` with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PermanentEventError(Exception):
    """Retrying cannot help (e.g. the payload lacks a required field); the row becomes `failed` at once."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(Exception):
    """Try again after `delay_seconds` (e.g. HighLevel said 429 with Retry-After); counts as an attempt."""

    def __init__(self, reason: str, *, delay_seconds: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = max(0.0, float(delay_seconds))
