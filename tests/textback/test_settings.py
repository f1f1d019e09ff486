"""The settings document: day-one defaults, agency and location overlays, and clear validation errors."""

from __future__ import annotations

from datetime import date, time

import pytest

from integration.textback.quiet_hours import Window
from integration.textback.settings import DEFAULT_SETTINGS, SettingsError, effective_settings, merge_documents


def test_defaults_validate_and_work_on_day_one():
    settings = effective_settings()
    assert settings.delay_seconds == 0
    assert settings.cooldown_hours == 24
    assert settings.quiet_window == Window(time(8), time(21))
    assert set(settings.missed_statuses) == {"no-answer", "busy", "voicemail", "canceled", "failed"}
    assert "Sorry we missed your call" in settings.templates["business_hours"]
    assert settings.weekly_hours["mon"] == ("08:00-17:00",)
    assert settings.weekly_hours["sun"] == ()


def test_agency_defaults_then_location_values_overlay_deeply():
    settings = effective_settings(
        company_defaults={"cooldown_hours": 48, "templates": {"after_hours": "Agency text"}},
        location_values={"cooldown_hours": 12, "excluded_numbers": ["(512) 555-0177"],
                         "business_hours": {"holidays": ["2026-12-25"]}},
    )
    assert settings.cooldown_hours == 12
    assert settings.templates["after_hours"] == "Agency text"
    assert settings.templates["business_hours"] == DEFAULT_SETTINGS["templates"]["business_hours"]
    assert settings.excluded_numbers == {"+15125550177"}
    assert settings.holidays == (date(2026, 12, 25),)
    assert settings.weekly_hours["tue"] == ("08:00-17:00",)


def test_merge_does_not_mutate_the_defaults():
    merged = merge_documents(DEFAULT_SETTINGS, {"templates": {"holiday": ""}})
    assert merged["templates"]["holiday"] == ""
    assert DEFAULT_SETTINGS["templates"]["holiday"] != ""


@pytest.mark.parametrize(("values", "message"), [
    ({"bogus": 1}, "bogus: Unknown field."),
    ({"daily_cap": 0}, "daily_cap: Must be greater than or equal to 1"),
    ({"missed_statuses": ["completed"]}, "missed_statuses.0: Must be one of"),
    ({"templates": {"business_hours": "Hi {firstname}"}}, "templates.business_hours: unknown placeholder {firstname}"),
    ({"quiet_hours": {"window": "07:00-21:00"}}, "quiet hours can only be stricter than the federal 08:00-21:00"),
    ({"quiet_hours": {"state_rules": {"FL": {"weekdays": "08:00-20:00"}}}}, "FL: 'weekdays' is not a day"),
    ({"quiet_hours": {"state_rules": {"Florida": {"mon-sun": "08:00-20:00"}}}}, "use a 2-letter state"),
    ({"excluded_numbers": ["not a number"]}, "'not a number' is not a phone number"),
    ({"timezone": "Mars/Olympus"}, "'Mars/Olympus' is not a time zone name"),
    ({"booking_link": "javascript:alert(1)"}, "the booking link must start with https://"),
    ({"business_hours": {"weekly": {"mon": ["17:00-08:00"]}}}, "must start before it ends"),
    ({"business_hours": {"weekly": {"monday": ["08:00-17:00"]}}}, "business_hours.weekly"),
    ({"templates": {"holiday": "bell\x07"}}, "control characters are not allowed"),
])
def test_bad_settings_name_the_field(values, message):
    with pytest.raises(SettingsError) as error:
        effective_settings(location_values=values)
    assert message in str(error.value)


def test_a_stricter_state_rule_and_location_window_are_accepted():
    settings = effective_settings(location_values={
        "quiet_hours": {"window": "09:00-20:00", "state_rules": {"AZ": {"mon-sun": "09:00-19:00"}}},
    })
    assert settings.quiet_window == Window(time(9), time(20))
    assert settings.state_rules == {"AZ": {"mon-sun": "09:00-19:00"}}
