"""Small helpers the resource views share: JSON bodies, validation, lookups with HighLevel's errors."""

from __future__ import annotations

from datetime import datetime

from flask import request

from integration.sandbox.errors import ApiError, validation_error
from integration.sandbox.guard import require_location, sandbox_state

__all__ = ["epoch_ms", "int_arg", "json_body", "owned_record", "parse_iso"]


def json_body(*, allowed: set[str] | None = None) -> dict:
    """The request's JSON object; unknown properties are refused as HighLevel's whitelist does."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise validation_error("the request body must be a JSON object")
    if allowed is not None:
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise validation_error(*(f"property {name} should not exist" for name in unknown))
    return body


def int_arg(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise validation_error(f"{name} must be a number conforming to the specified constraints") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise validation_error(f"{name} must be at least {minimum}{bound}")
    return value


def owned_record(collection: str, record_id: str, *, not_found: str) -> dict:
    """A record by id, 404 when missing, 403 when it belongs to a sub-account the token cannot touch."""
    state = sandbox_state()
    with state.lock:
        record = getattr(state.world, collection).get(record_id)
    if record is None:
        raise ApiError(404, not_found, error="Not Found")
    require_location(record["locationId"])
    return record


def parse_iso(name: str, raw, *, require_offset: bool = False) -> datetime:
    if not isinstance(raw, str) or not raw:
        raise validation_error(f"{name} must be a valid ISO 8601 date string")
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise validation_error(f"{name} must be a valid ISO 8601 date string") from None
    if require_offset and moment.tzinfo is None:
        raise validation_error(f"{name} must include a UTC offset, e.g. 2021-06-23T03:30:00+05:30")
    return moment


def epoch_ms(iso_text: str) -> int:
    return int(datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp() * 1000)
