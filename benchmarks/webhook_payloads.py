"""Signed HighLevel webhooks for the pipeline benchmark, and callers whose local time allows a text now.

Bodies are the sandbox's own InboundMessage CALL payloads (integration.sandbox.payloads), encoded
the way the sandbox encodes them and signed with its Ed25519 key, so the receiver sees exactly what
the sandbox (and HighLevel) would send. Only `x-ghl-signature` is sent: the receiver checks it first
and never falls back to the legacy RSA header when it is present, so RSA signing would only slow
the load generator down.

Quiet hours cannot be switched off (the federal 08:00-21:00 window is the floor), so the callers'
numbers come from an area code where, by the app's own rules, it is daytime for the whole run.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from integration.sandbox.ids import iso
from integration.sandbox.keys import load_sandbox_private_keys
from integration.sandbox.payloads import inbound_call
from integration.sandbox.webhooks import encode_payload
from integration.textback.phone import UnusableNumber, parse_caller_number
from integration.textback.quiet_hours import (
    DEFAULT_STATE_RULES,
    SendingWindows,
    next_allowed_time,
    parse_day_rules,
    parse_window,
)
from integration.textback.settings import DEFAULT_SETTINGS

__all__ = ["ANSWERED_SECONDS", "SHORT_ANSWERED_SECONDS", "CallerArea", "CallerRef", "Signer", "answered_call",
           "caller_numbers", "missed_call", "pick_caller_area"]

# Tried in order: E.164 prefixes and the full length of their numbers. All but the last two are in states
# without a stricter rule than the federal window. Guam covers the hours (07:00-11:00 UTC) when it is night on
# every North American coast; British mobiles cover the hour after, when it is night from Guam to Newfoundland.
# The locations' allowed_countries are set to include each one's country.
CANDIDATE_PREFIXES = (("+1206", 12, "US"), ("+1303", 12, "US"), ("+1312", 12, "US"), ("+1212", 12, "US"),
                      ("+1907", 12, "US"), ("+1808", 12, "US"), ("+1902", 12, "CA"), ("+1671", 12, "GU"),
                      ("+447", 13, "GB"))


@dataclass(frozen=True)
class CallerArea:
    """A number prefix whose callers may be texted for the whole run."""

    prefix: str
    length: int  # of a whole E.164 number, "+" included
    region: str
    zones: tuple[str, ...]
    state: str | None


@dataclass(frozen=True)
class CallerRef:
    """A caller the sandbox knows: its contact, conversation and the call message it recorded."""

    location_id: str
    contact_id: str
    conversation_id: str
    message_id: str


def _windows_for(state: str | None) -> SendingWindows:
    location_window = parse_window(DEFAULT_SETTINGS["quiet_hours"]["window"])
    rules = [parse_day_rules(DEFAULT_STATE_RULES[state])] if state in DEFAULT_STATE_RULES else []
    return SendingWindows.build(location_window=location_window, state_rules=rules)


def pick_caller_area(now: datetime, *, span: timedelta) -> CallerArea:
    """The first candidate prefix where texts are allowed from `now` until `now + span`.

    Raises:
        RuntimeError: no candidate is in daytime for the whole span (say when the run would work).
    """
    for prefix, length, region in CANDIDATE_PREFIXES:
        probe = CallerArea(prefix, length, region, (), None)
        caller = parse_caller_number(caller_numbers(probe, 1, seed=0)[0])
        windows = _windows_for(caller.state)
        # Each day's window is one interval, so allowed at both ends on the same local day is allowed throughout.
        end = now + span
        same_day = all(now.astimezone(ZoneInfo(z)).date() == end.astimezone(ZoneInfo(z)).date()
                       for z in caller.time_zones)
        if same_day and all(next_allowed_time(t, zones=caller.time_zones, windows=windows) == t.astimezone(UTC)
                            for t in (now, end)):
            return CallerArea(prefix, length, region, tuple(caller.time_zones), caller.state)
    raise RuntimeError("no candidate number prefix is in daytime for the whole run; texts would all be deferred")


def caller_numbers(area: CallerArea, count: int, *, seed: int) -> list[str]:
    """`count` distinct valid mobile-or-unknown numbers starting with `area.prefix`, reproducible from `seed`.

    Only numbers of `area.region` and, once the area is picked, of exactly its time zones: +447 also holds
    Jersey's, Guernsey's and the Isle of Man's mobiles, and a few numbers whose zone is unknown.
    """
    rng = random.Random(seed)
    numbers: dict[str, None] = {}
    attempts = 0
    rest = area.length - len(area.prefix)
    while len(numbers) < count:
        attempts += 1
        if attempts > count * 50 + 1000:
            raise RuntimeError(f"prefix {area.prefix} yields too few valid numbers")
        raw = f"{area.prefix}{rng.randint(2, 9)}{rng.randint(0, 10 ** (rest - 1) - 1):0{rest - 1}d}"
        try:
            caller = parse_caller_number(raw)
        except UnusableNumber:
            continue
        if caller.region == area.region and (not area.zones or tuple(caller.time_zones) == tuple(area.zones)):
            numbers[caller.e164] = None
    return list(numbers)


class Signer:
    """Signs bodies with the sandbox's Ed25519 key (the app verifies with its public half in sandbox mode)."""

    def __init__(self, instance_path: str | Path) -> None:
        self._key, _ = load_sandbox_private_keys(instance_path)

    def request(self, payload: dict) -> tuple[bytes, dict[str, str]]:
        """(body, headers) exactly as the sandbox's dispatcher would send them, minus the RSA header."""
        body = encode_payload(payload)
        signature = base64.b64encode(self._key.sign(body)).decode()
        return body, {"Content-Type": "application/json", "User-Agent": "textback-benchmark/1.0",
                      "x-ghl-signature": signature}


def _call_payload(caller: CallerRef, *, outcome: str, duration: int, at: datetime, message_id: str) -> dict:
    message = {"locationId": caller.location_id, "contactId": caller.contact_id,
               "conversationId": caller.conversation_id, "dateAdded": iso(at), "id": message_id}
    payload = inbound_call(message=message, outcome=outcome, duration=duration, recording_url=None)
    payload["timestamp"] = iso(at)
    payload["webhookId"] = str(uuid.uuid4())
    return payload


def missed_call(caller: CallerRef, *, at: datetime) -> dict:
    """The InboundMessage webhook of the call the sandbox recorded for `caller`, unanswered, dated `at`."""
    return _call_payload(caller, outcome="no-answer", duration=0, at=at, message_id=caller.message_id)


# Answered calls last one to five minutes. From MAX_SHORT_CALL_SECONDS on, no location can count one as missed
# and the receiver stores it as ignored; shorter ones go to the workers, whose location settings decide.
ANSWERED_SECONDS = range(60, 300)
# Every one a possible "answered but short" missed call, so every webhook goes to the workers.
SHORT_ANSWERED_SECONDS = range(1, 120)


def answered_call(callers: Sequence[CallerRef], index: int, *, at: datetime,
                  durations: range = ANSWERED_SECONDS) -> dict:
    """An answered call (a new call message each time) from one of `callers`: stored, maybe processed, never
    texted."""
    caller = callers[index % len(callers)]
    message_id = uuid.uuid4().hex[:20]
    duration = durations[index % len(durations)]
    return _call_payload(caller, outcome="answered", duration=duration, at=at, message_id=message_id)
