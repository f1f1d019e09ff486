"""The sandbox's tunables: defaults like HighLevel, changeable at start-up and via /_sandbox/config."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from urllib.parse import urlsplit

from integration.config import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SANDBOX_SSO_KEY
from integration.sandbox.latency import LatencyError, LatencyModel, parse_latency

__all__ = ["DEFAULT_WEBHOOK_URL", "SandboxConfig", "SandboxConfigError"]

DEFAULT_WEBHOOK_URL = "http://localhost:5000/webhooks/ghl"
DEFAULT_REDIRECT_URI = "http://localhost:5000/oauth/callback"


class SandboxConfigError(ValueError):
    """A sandbox option is unknown or has the wrong type; the message names it."""


@dataclass(frozen=True)
class SandboxConfig:
    """How the simulated HighLevel behaves. Frozen: changes build a new config under the state lock."""

    client_id: str = SANDBOX_CLIENT_ID
    client_secret: str = field(default=SANDBOX_CLIENT_SECRET, repr=False)
    webhook_url: str = DEFAULT_WEBHOOK_URL
    redirect_uris: tuple[str, ...] = (DEFAULT_REDIRECT_URI,)
    # Burst and daily limits per (client, resource), as HighLevel documents them.
    rate_limit: int = 100
    rate_window: float = 10.0
    daily_limit: int = 200_000
    access_token_ttl: int = 86_399
    code_ttl: int = 600
    # HighLevel retries a webhook only after a 429: six times, about ten minutes apart plus jitter.
    webhook_retry_delays: tuple[float, ...] = (600.0,) * 6
    webhook_retry_jitter: float = 0.1
    webhook_timeout: float = 10.0
    # None delivers every event type the sandbox produces; a list restricts it (like portal toggles).
    webhook_events: tuple[str, ...] | None = None
    # How long a timeout_after_accept fault holds the answer by default (beyond the app's 10 s timeout).
    default_fault_delay: float = 15.0
    # The app's Custom Page, embedded on each installed sub-account's page like HighLevel does, and the
    # Shared Secret the SSO payload handed to it is encrypted with.
    app_page_url: str | None = None
    sso_key: str = field(default=SANDBOX_SSO_KEY, repr=False)
    # Per-request delay of the API like HighLevel's (integration.sandbox.latency); None: answers at once.
    latency: LatencyModel | None = None

    @property
    def app_id(self) -> str:
        return self.client_id.split("-", 1)[0]

    def updated(self, changes: dict) -> SandboxConfig:
        """Return a copy with `changes` applied, each checked; raise SandboxConfigError naming a bad one."""
        known = {f.name: f for f in fields(self)}
        clean: dict = {}
        for name, value in changes.items():
            if name not in known:
                raise SandboxConfigError(f"unknown sandbox option {name!r}")
            clean[name] = _coerce(name, value)
        return replace(self, **clean)


def _coerce(name: str, value):
    if name == "latency":
        try:
            return parse_latency(value)
        except LatencyError as exc:
            raise SandboxConfigError(str(exc)) from None
    if name == "app_page_url":
        return None if value is None else _http_url(name, value)
    if name in {"client_id", "client_secret", "sso_key"}:
        if not isinstance(value, str) or not value:
            raise SandboxConfigError(f"{name} must be a non-empty string")
        return value
    if name == "webhook_url":
        return _http_url(name, value)
    if name == "redirect_uris":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not value:
            raise SandboxConfigError("redirect_uris must be a non-empty list of URLs")
        return tuple(_http_url(name, item) for item in value)
    if name in {"rate_limit", "daily_limit", "access_token_ttl", "code_ttl"}:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise SandboxConfigError(f"{name} must be a whole number >= 0")
        return value
    if name in {"rate_window", "webhook_retry_jitter", "webhook_timeout", "default_fault_delay"}:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise SandboxConfigError(f"{name} must be a number >= 0")
        return float(value)
    if name == "webhook_retry_delays":
        if not isinstance(value, list | tuple) or any(
            isinstance(v, bool) or not isinstance(v, int | float) or v < 0 for v in value
        ):
            raise SandboxConfigError("webhook_retry_delays must be a list of seconds >= 0")
        return tuple(float(v) for v in value)
    if name == "webhook_events":
        if value is None:
            return None
        if not isinstance(value, list | tuple) or any(not isinstance(v, str) for v in value):
            raise SandboxConfigError("webhook_events must be null or a list of event type names")
        return tuple(value)
    raise SandboxConfigError(f"unknown sandbox option {name!r}")  # pragma: no cover - guarded above


def _http_url(name: str, value) -> str:
    if not isinstance(value, str):
        raise SandboxConfigError(f"{name} must be an http(s) URL")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise SandboxConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value
