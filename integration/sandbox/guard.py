"""The checks HighLevel runs before a resource endpoint acts, in its order.

Version header, bearer token, rate limit, token class, scope; then each view checks that the
token may touch the sub-account it names (`require_location`). Failures raise ApiError with the
exact bodies of facts §1.6 and §11.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from flask import current_app, g, request

from integration.sandbox.errors import (
    AUTH_CLASS_MESSAGE,
    INVALID_JWT,
    LOCATION_FORBIDDEN,
    SCOPE_MESSAGE,
    ApiError,
    validation_error,
)
from integration.sandbox.state import SandboxState
from integration.sandbox.tokens import Grant

__all__ = [
    "COMPANY",
    "LOCATION",
    "bearer_token",
    "current_grant",
    "require_location",
    "required_arg",
    "resource",
    "sandbox_state",
]

LOCATION = "Location"
COMPANY = "Company"

_VERSION = re.compile(r"^(\d{4}-\d{2}-\d{2}|v\d+)$")


def sandbox_state() -> SandboxState:
    return current_app.extensions["sandbox"]


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _check_version() -> None:
    version = request.headers.get("Version")
    if version is None or not version.strip():
        raise ApiError(401, "version header was not found.")
    if not _VERSION.match(version.strip()):
        raise ApiError(400, f"Invalid API version segment '{version.strip()}' at position 0", error="Bad Request")


def resource(*, token_classes: tuple[str, ...], scopes: tuple[str, ...]) -> Callable:
    """Decorate a view: run HighLevel's checks, then call it with g.grant set.

    `scopes` lists alternatives: any one of them grants access.
    """

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            state = sandbox_state()
            _check_version()
            token = bearer_token()
            grant = state.tokens.authenticate(token) if token else None
            if grant is None:
                raise ApiError(401, INVALID_JWT)
            config = state.config
            decision = state.limiter.hit((grant.client_id, grant.resource_id), limit=config.rate_limit,
                                         window=config.rate_window, daily_limit=config.daily_limit)
            g.rate_headers = decision.headers()
            g.grant = grant
            if not decision.allowed:
                raise ApiError(429, "Too Many Requests")
            if grant.user_type not in token_classes:
                raise ApiError(401, AUTH_CLASS_MESSAGE)
            if scopes and not grant.scopes.intersection(scopes):
                raise ApiError(401, SCOPE_MESSAGE)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def current_grant() -> Grant:
    return g.grant


def require_location(location_id: str) -> None:
    """403 unless the current token may act on this sub-account."""
    grant = current_grant()
    if grant.user_type == LOCATION:
        if grant.location_id != location_id:
            raise ApiError(403, LOCATION_FORBIDDEN)
        return
    state = sandbox_state()
    with state.lock:
        location = state.world.locations.get(location_id)
    if location is None or location["companyId"] != grant.company_id:
        raise ApiError(403, LOCATION_FORBIDDEN)


def required_arg(name: str) -> str:
    """A required query parameter, or 422 in HighLevel's validation shape."""
    value = request.args.get(name)
    if value is None or value == "":
        raise validation_error(f"{name} should not be empty", f"{name} must be a string")
    return value
