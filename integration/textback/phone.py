"""Caller numbers: E.164 normalisation, anonymous callers, and where a number is (time zone, US state).

Everything here is pure (phonenumbers' offline metadata, no network). The area code is the accepted
proxy for a caller's location when deciding quiet hours (reliability-catalogue §1.11).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberType, geocoder
from phonenumbers import timezone as number_timezone

__all__ = [
    "CallerNumber",
    "UnusableNumber",
    "is_anonymous",
    "normalize_number",
    "normalize_numbers",
    "parse_caller_number",
    "us_state_code",
]

# Words carriers and HighLevel put where a withheld caller id would be.
_ANONYMOUS_WORDS = {
    "anonymous", "restricted", "private", "unknown", "unavailable", "blocked", "withheld",
    "no caller id", "nocallerid", "not available", "out of area", "unknown caller",
}
# Placeholder "numbers" telephony providers report for withheld ids (keypad spellings of ANONYMOUS,
# RESTRICTED, BLOCKED, UNKNOWN, UNAVAILABLE), as Twilio documents them.
_ANONYMOUS_NUMBERS = {"+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253"}

# Number types that belong to no place, so their "time zone" is meaningless.
_NON_GEOGRAPHIC = {
    PhoneNumberType.TOLL_FREE, PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST,
    PhoneNumberType.PERSONAL_NUMBER, PhoneNumberType.UAN, PhoneNumberType.VOIP, PhoneNumberType.PAGER,
}
# A number that phonenumbers places in more zones than this is not really placed at all.
_MAX_ZONES = 4

_US_STATES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA", "colorado": "CO",
    "connecticut": "CT", "delaware": "DE", "district of columbia": "DC", "washington d.c.": "DC", "florida": "FL",
    "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN", "iowa": "IA",
    "kansas": "KS", "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD",
    "massachusetts": "MA", "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO",
    "montana": "MT", "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ",
    "new mexico": "NM", "new york": "NY", "north carolina": "NC", "north dakota": "ND", "ohio": "OH",
    "oklahoma": "OK", "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC",
    "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT", "virginia": "VA",
    "washington": "WA", "west virginia": "WV", "wisconsin": "WI", "wyoming": "WY", "puerto rico": "PR",
}
_STATE_CODES = set(_US_STATES.values())
_CITY_STATE = re.compile(r",\s*([A-Z]{2})$")


class UnusableNumber(ValueError):
    """The caller's number cannot be texted; `reason` is readable by a contractor."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CallerNumber:
    """A valid caller number and what its digits say about where the caller is."""

    e164: str
    region: str | None
    time_zones: tuple[str, ...]
    state: str | None

    @property
    def country_code(self) -> int:
        return phonenumbers.parse(self.e164).country_code


def is_anonymous(raw: str | None) -> bool:
    """True for an empty, withheld or placeholder caller id."""
    if raw is None:
        return True
    text = raw.strip().lower()
    if not text:
        return True
    if text in _ANONYMOUS_WORDS:
        return True
    digits = "+" + re.sub(r"\D", "", text)
    return digits in _ANONYMOUS_NUMBERS


def normalize_number(raw: str | None, *, default_region: str = "US") -> str | None:
    """E.164 for anything that parses as a possible number, else None. Used to compare numbers."""
    if not raw or not str(raw).strip():
        return None
    try:
        parsed = phonenumbers.parse(str(raw).strip(), default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_numbers(raw: Iterable[str | None], *, default_region: str = "US") -> frozenset[str]:
    """The E.164 forms of those numbers that parse; for sets of own, staff and excluded numbers."""
    return frozenset(filter(None, (normalize_number(r, default_region=default_region) for r in raw)))


def us_state_code(text: str | None) -> str | None:
    """ "FL", "fl" or "Florida" -> "FL"; None for anything else."""
    if not text:
        return None
    cleaned = text.strip()
    if cleaned.upper() in _STATE_CODES:
        return cleaned.upper()
    return _US_STATES.get(cleaned.lower())


def parse_caller_number(raw: str | None, *, default_region: str = "US") -> CallerNumber:
    """Validate a caller's number for texting.

    Raises:
        UnusableNumber: no number, an anonymous caller, or a number that is not a valid phone number.
    """
    if raw is None or not str(raw).strip():
        raise UnusableNumber("the caller has no phone number")
    if is_anonymous(str(raw)):
        raise UnusableNumber("anonymous caller (no caller id)")
    try:
        parsed = phonenumbers.parse(str(raw).strip(), default_region)
    except phonenumbers.NumberParseException:
        raise UnusableNumber(f"{_shown(raw)} is not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise UnusableNumber(f"{_shown(raw)} is not a valid phone number")
    number_type = phonenumbers.number_type(parsed)
    if number_type == PhoneNumberType.FIXED_LINE:
        # NOTE: FIXED_LINE means "certainly a landline" (outside NANP, where mobile and fixed share
        # ranges and phonenumbers says FIXED_LINE_OR_MOBILE). A text to a landline never arrives.
        raise UnusableNumber(f"{_shown(raw)} is a landline")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return CallerNumber(
        e164=e164,
        region=phonenumbers.region_code_for_number(parsed),
        time_zones=_time_zones(parsed, number_type),
        state=_us_state(parsed),
    )


def _time_zones(parsed: phonenumbers.PhoneNumber, number_type: int) -> tuple[str, ...]:
    if number_type in _NON_GEOGRAPHIC:
        return ()
    zones = tuple(z for z in number_timezone.time_zones_for_number(parsed) if z != "Etc/Unknown")
    return zones if len(zones) <= _MAX_ZONES else ()


def _us_state(parsed: phonenumbers.PhoneNumber) -> str | None:
    if phonenumbers.region_code_for_number(parsed) not in {"US", "PR"}:
        return None
    description = geocoder.description_for_number(parsed, "en").strip()
    if not description:
        return None
    match = _CITY_STATE.search(description)
    if match and match.group(1) in _STATE_CODES:
        return match.group(1)
    return _US_STATES.get(description.lower())


def _shown(raw: object) -> str:
    """The number as a contractor typed or saw it, bounded so hostile input cannot flood a reason."""
    text = str(raw).strip()
    return text if len(text) <= 24 else text[:24] + "..."
