"""Caller numbers: E.164, anonymous callers, landlines, and where a number is."""

from __future__ import annotations

import pytest

from integration.textback.phone import (
    UnusableNumber,
    is_anonymous,
    normalize_number,
    normalize_numbers,
    parse_caller_number,
    us_state_code,
)


@pytest.mark.parametrize("raw", ["(305) 555-0142", "305.555.0142", "+1 305 555 0142", "13055550142"])
def test_us_formats_normalise_to_e164(raw):
    assert parse_caller_number(raw).e164 == "+13055550142"


def test_a_number_knows_its_zone_and_state():
    florida = parse_caller_number("+13055550142")
    assert florida.time_zones == ("America/New_York",)
    assert florida.state == "FL"
    assert florida.region == "US"
    assert parse_caller_number("+12125550100").state == "NY"  # geocoder says "New York, NY"
    assert parse_caller_number("+14155550100").state == "CA"


@pytest.mark.parametrize("raw", [None, "", "  ", "anonymous", "Restricted", "PRIVATE", "unknown", "+266696687",
                                 "+7378742833", "+2562533", "+8656696", "+86282452253"])
def test_anonymous_callers(raw):
    assert is_anonymous(raw)
    with pytest.raises(UnusableNumber) as error:
        parse_caller_number(raw)
    assert error.value.reason in {"anonymous caller (no caller id)", "the caller has no phone number"}


@pytest.mark.parametrize(("raw", "reason"), [
    ("+15551234567", "+15551234567 is not a valid phone number"),
    ("12", "12 is not a valid phone number"),
    ("call me", "call me is not a phone number"),
    ("+442079460000", "+442079460000 is a landline"),
])
def test_unusable_numbers_say_why(raw, reason):
    with pytest.raises(UnusableNumber) as error:
        parse_caller_number(raw)
    assert error.value.reason == reason


def test_hostile_input_is_bounded_in_the_reason():
    with pytest.raises(UnusableNumber) as error:
        parse_caller_number("x" * 5000)
    assert len(error.value.reason) < 80


def test_international_mobile_parses_with_its_region():
    uk = parse_caller_number("+447700900123".replace("900123", "123456"))
    assert uk.region == "GB"
    assert uk.state is None


def test_toll_free_numbers_have_no_zone():
    assert parse_caller_number("+18005550100").time_zones == ()


def test_normalize_number_for_comparisons():
    assert normalize_number("(512) 555-0100") == "+15125550100"
    assert normalize_number("nonsense") is None
    assert normalize_numbers(["512-555-0100", None, "x", "+1 720 555 0100"]) == {"+15125550100", "+17205550100"}


def test_us_state_codes():
    assert us_state_code("florida") == "FL"
    assert us_state_code("tx") == "TX"
    assert us_state_code("Bavaria") is None
    assert us_state_code(None) is None
