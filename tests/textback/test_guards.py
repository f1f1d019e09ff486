"""The guard chain: each guard's outcome and the reason a contractor reads."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from integration.textback.guards import CallFacts, ContactFacts, Defer, Proceed, Skip, describe_ago, evaluate
from integration.textback.missed_call import Missed
from integration.textback.settings import effective_settings

CHICAGO = ZoneInfo("America/Chicago")
# Monday 2026-03-02 10:00 in Austin (Central): business hours, inside every quiet-hours window.
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=CHICAGO).astimezone(UTC)
CALLER = "+15125550120"  # an Austin, TX number


def make_facts(**changes) -> CallFacts:
    contact_changes = changes.pop("contact", {})
    contact = None if contact_changes is None else replace(
        ContactFacts(contact_id="c1", phone=CALLER, first_name="Dana"), **contact_changes)
    call = Missed(call_key="msg:loc1:m1", location_id="loc1", contact_id="c1", conversation_id="conv1",
                  message_id="m1", status="no-answer", duration=None, called_at=NOW - timedelta(seconds=2),
                  user_id=None, caller_number=None, called_number="+15125550100")
    facts = CallFacts(now=NOW, call=call, first_seen_at=NOW, location_live=True, location_enabled=True,
                      location_timezone="America/Chicago", location_country="US",
                      own_numbers=frozenset({"+15125550100"}), staff_numbers={"+15125550110": "Mike Alvarez"},
                      contact=contact)
    return replace(facts, **changes)


def run(facts: CallFacts | None = None, **settings_values):
    return evaluate(facts or make_facts(), effective_settings(location_values=settings_values))


def test_an_ordinary_missed_call_proceeds_with_the_business_hours_template():
    outcome = run()
    assert isinstance(outcome, Proceed)
    assert outcome.template_key == "business_hours"
    assert outcome.caller.e164 == CALLER
    assert outcome.caller_zones == ("America/Chicago",)
    assert outcome.describe() == "sending the business-hours message"


@pytest.mark.parametrize(("facts", "reason"), [
    (make_facts(location_live=False), "skipped: the app is not installed on this sub-account"),
    (make_facts(location_enabled=False), "skipped: text back is turned off for this sub-account"),
    (make_facts(contact={"phone": None}), "skipped: the caller has no phone number"),
    (make_facts(contact={"phone": "anonymous"}), "skipped: anonymous caller (no caller id)"),
    (make_facts(contact={"phone": "+15551234567"}), "skipped: +15551234567 is not a valid phone number"),
    (make_facts(contact={"phone": "+447700123456"}),
     "skipped: +447700123456 is an international number (texts go to US, CA numbers)"),
    (make_facts(contact={"phone": "+15125550100"}), "skipped: the caller is one of the business's own numbers"),
    (make_facts(contact={"phone": "+15125550110"}), "skipped: the caller is a team member (Mike Alvarez)"),
    (make_facts(contact={"dnd": True}), "skipped: the caller has Do Not Disturb on"),
    (make_facts(contact={"sms_dnd_status": "active"}), "skipped: the caller has Do Not Disturb on for SMS"),
    (make_facts(contact={"sms_dnd_status": "permanent"}), "skipped: the caller has Do Not Disturb on for SMS"),
    (make_facts(opted_out_at=NOW - timedelta(days=3)), "skipped: the caller opted out of texts 3 days ago"),
    (make_facts(last_texted_at=NOW - timedelta(hours=2, minutes=5)), "skipped: texted this caller 2 h ago"),
    (make_facts(sent_today=200), "skipped: the daily limit of 200 texts is reached"),
    (make_facts(call=replace(make_facts().call, called_at=NOW - timedelta(hours=5))),
     "skipped: the call was 5 h ago when it reached us, too long ago to text back"),
])
def test_skips_and_their_reasons(facts, reason):
    outcome = run(facts)
    assert isinstance(outcome, Skip)
    assert outcome.describe() == reason


def test_a_call_deferred_overnight_is_not_too_old():
    # Reached us promptly at 22:30; evaluated again at 09:00 after the quiet-hours deferral.
    call = replace(make_facts().call, called_at=NOW - timedelta(hours=11))
    facts = make_facts(call=call, first_seen_at=NOW - timedelta(hours=11) + timedelta(seconds=2))
    assert isinstance(run(facts), Proceed)


def test_sms_dnd_inactive_still_texts():
    assert isinstance(run(make_facts(contact={"sms_dnd_status": "inactive"})), Proceed)


def test_a_contact_without_a_phone_uses_the_number_from_the_call():
    call = replace(make_facts().call, caller_number="(512) 555-0121")
    outcome = run(make_facts(contact={"phone": None}, call=call))
    assert isinstance(outcome, Proceed)
    assert outcome.caller.e164 == "+15125550121"


def test_no_contact_record_is_skipped():
    assert run(make_facts(contact=None)).describe() == "skipped: the call has no contact record in HighLevel"


def test_settings_lists_exclude_numbers():
    assert run(excluded_numbers=["512-555-0120"]).describe() == "skipped: the caller is on the excluded numbers list"
    own = run(business_numbers=["512-555-0120"])
    assert own.describe() == "skipped: the caller is one of the business's own numbers"


def test_allowed_countries_setting_admits_international_callers():
    facts = make_facts(contact={"phone": "+447700123456"})
    assert isinstance(run(facts, allowed_countries=["US", "GB"]), (Proceed, Defer))


def test_cooldown_expires_and_can_be_turned_off():
    assert isinstance(run(make_facts(last_texted_at=NOW - timedelta(hours=25))), Proceed)
    assert isinstance(run(make_facts(last_texted_at=NOW - timedelta(minutes=1)), cooldown_hours=0), Proceed)


def test_existing_customers_get_their_own_template_or_none():
    tagged = make_facts(contact={"tags": frozenset({"customer"})})
    assert run(tagged).template_key == "existing_customer"
    assert run(tagged, existing_customers={"action": "skip"}).describe() == \
        "skipped: existing customer (tag 'customer')"
    assert run(tagged, existing_customers={"action": "same"}).template_key == "business_hours"
    opportunity = make_facts(contact={"open_opportunity": "Water heater"})
    assert run(opportunity, existing_customers={"action": "skip"}).describe() == \
        "skipped: existing customer (open opportunity 'Water heater')"
    typed = make_facts(contact={"contact_type": "customer"})
    assert run(typed, existing_customers={"action": "skip"}).describe() == \
        "skipped: existing customer (contact type 'customer')"


def test_after_hours_and_holiday_pick_their_templates():
    evening = NOW.replace(hour=23)  # 17:00 in Chicago
    facts = make_facts(now=evening, call=replace(make_facts().call, called_at=evening))
    assert run(facts).template_key == "after_hours"
    assert run(facts, business_hours={"holidays": ["2026-03-02"]}).template_key == "holiday"
    assert run(facts, templates={"after_hours": ""}).describe() == "skipped: no after-hours message is set"


def test_quiet_hours_defer_to_the_callers_morning():
    night = datetime(2026, 3, 2, 22, 30, tzinfo=CHICAGO).astimezone(UTC)
    facts = make_facts(now=night, call=replace(make_facts().call, called_at=night))
    outcome = run(facts)
    assert isinstance(outcome, Defer)
    # Texas rule: 09:00 Monday-Saturday.
    assert outcome.until == datetime(2026, 3, 3, 9, 0, tzinfo=CHICAGO)
    assert outcome.describe() == "deferred to 09:00 tomorrow caller time (quiet hours)"


def test_quiet_hours_use_the_callers_zone_not_the_business():
    # A Los Angeles caller at 07:30 Pacific (09:30 in Chicago) waits for 08:00 Pacific.
    early = datetime(2026, 3, 2, 9, 30, tzinfo=CHICAGO).astimezone(UTC)
    facts = make_facts(now=early, call=replace(make_facts().call, called_at=early),
                       contact={"phone": "+14155550100"})
    outcome = run(facts)
    assert isinstance(outcome, Defer)
    assert outcome.until == datetime(2026, 3, 2, 8, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert outcome.describe() == "deferred to 08:00 caller time (quiet hours)"


def test_contacts_state_rule_also_applies():
    # A California number whose contact lives in Florida: Florida's 20:00 end applies (most restrictive).
    evening = datetime(2026, 3, 2, 20, 30, tzinfo=ZoneInfo("America/Los_Angeles")).astimezone(UTC)
    facts = make_facts(now=evening, call=replace(make_facts().call, called_at=evening),
                       contact={"phone": "+14155550100", "state": "Florida"})
    assert isinstance(run(facts), Defer)


def test_delay_defers_from_the_call_time():
    outcome = run(delay_seconds=60)
    assert isinstance(outcome, Defer)
    assert outcome.until == NOW - timedelta(seconds=2) + timedelta(seconds=60)
    assert outcome.describe() == "deferred to 10:00 (60 s delay)"
    later = make_facts(now=NOW + timedelta(seconds=58))
    assert isinstance(run(later, delay_seconds=60), Proceed)


def test_a_call_stamped_ahead_of_our_clock_is_not_deferred():
    """HighLevel's clock may run ahead of ours: without a configured delay the text goes now."""
    ahead = make_facts()
    ahead = replace(ahead, call=replace(ahead.call, called_at=NOW + timedelta(seconds=3)))
    assert isinstance(run(ahead), Proceed)
    assert isinstance(run(ahead, delay_seconds=60), Defer)


def test_unknown_number_zone_falls_back_to_contact_then_location():
    toll_free = make_facts(contact={"phone": "+18005550100", "timezone": "America/Denver"})
    assert run(toll_free).caller_zones == ("America/Denver",)
    no_contact_zone = make_facts(contact={"phone": "+18005550100"})
    assert run(no_contact_zone).caller_zones == ("America/Chicago",)


@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(seconds=5), "just now"), (timedelta(minutes=5), "5 min ago"), (timedelta(hours=2), "2 h ago"),
    (timedelta(hours=47), "47 h ago"), (timedelta(days=3), "3 days ago"), (timedelta(seconds=-5), "just now"),
])
def test_describe_ago(delta, text):
    assert describe_ago(delta) == text
