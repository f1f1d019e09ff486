"""Each outcome's plain words on GET /app/activity, from calls driven through the real pipeline against the sandbox
(the sender over real HTTP; the answered call through the signed webhook receiver and a worker)."""

from __future__ import annotations

import html as html_lib

from integration.textback.models import MissedCall
from tests.activity.helpers import sign_in, table_rows
from tests.textback.conftest import ACME, AUSTIN
from tests.textback.helpers import call_webhook, missed, row_of, run_worker
from tests.textback.test_sender_sandbox import crafted_call, sandbox_contact

CALLER = "+15125550177"


def activity(client, **query) -> list[str]:
    response = client.get("/app/activity", query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return table_rows(html_lib.unescape(response.get_data(as_text=True)))


def process(sender, payload) -> int:
    missed_call_id, _ = sender.record(missed(payload), event_id=None)
    sender.process(missed_call_id)
    return missed_call_id


def test_texted_dnd_cooldown_staff_and_failed_calls_say_why(acme, sandbox, clock, sender, tb_app, tb_settings):
    texted = process(sender, call_webhook(sandbox, clock, ACME, CALLER, seconds_ago=60))
    clock.advance(minutes=1)
    process(sender, call_webhook(sandbox, clock, ACME, "+15125550122"))  # Priya Shah: SMS DND in the seed
    clock.advance(minutes=1)
    process(sender, call_webhook(sandbox, clock, ACME, "+15125550111"))  # Sara Kim, a team member
    clock.advance(hours=2)
    process(sender, call_webhook(sandbox, clock, ACME, CALLER))  # the same caller again: cooldown
    clock.advance(minutes=1)
    # HighLevel refuses the text (the call came in on a number that is not the location's): its reason is shown.
    contact = sandbox_contact(sandbox, firstName="Dana", lastName="Whitfield", phone="+15125550190")
    failed = process(sender, crafted_call(contact["id"], clock, to="+15125559999"))
    assert row_of(failed).status == MissedCall.FAILED

    client = tb_app.test_client()
    sign_in(client, tb_settings, ACME)
    rows = activity(client)
    assert len(rows) == 5
    newest_first = rows
    assert "Dana Whitfield" in newest_first[0] and "Failed" in newest_first[0]
    assert "HighLevel refused the text: fromNumber +15125559999 is not a phone number of this location" \
        in newest_first[0]
    assert "Skipped Skipped: texted this caller 2 h ago" in newest_first[1]
    assert "Skipped: the caller is a team member (Sara Kim)" in newest_first[2]
    assert "Priya Shah" in newest_first[3] and "Skipped: the caller has Do Not Disturb on for SMS" in newest_first[3]
    assert "Texted Texted at 15:00 (business-hours message, 1 segment)" in newest_first[4]
    assert CALLER in newest_first[4] and "no answer" in newest_first[4]
    assert row_of(texted).contact_name is None or "Texted" in newest_first[4]

    # Each result filter finds its own.
    assert [r for r in activity(client, outcome="skipped")] == newest_first[1:4]
    assert activity(client, outcome="failed") == newest_first[:1]
    assert activity(client, outcome="texted") == newest_first[4:]
    # Search by name, and by part of a number in any format.
    assert activity(client, q="whitfield") == newest_first[:1]
    assert activity(client, q="(512) 555-0122") == newest_first[3:4]


def test_a_call_in_quiet_hours_is_deferred_to_the_morning(acme, sandbox, clock, sender, tb_app, tb_settings):
    clock.now = clock.now.astimezone(AUSTIN).replace(hour=22, minute=30)
    process(sender, call_webhook(sandbox, clock, ACME, CALLER))
    client = tb_app.test_client()
    sign_in(client, tb_settings, ACME)
    (row,) = activity(client, outcome="deferred")
    assert "Deferred Deferred to 09:00 tomorrow caller time (quiet hours)" in row


def test_an_answered_call_is_listed_as_not_missed_with_its_length(served_app, sandbox, install, live_sender,
                                                                   set_location_settings, tb_settings):
    install(ACME)
    set_location_settings(max_call_age_minutes=7 * 24 * 60)
    run_worker()  # the INSTALL webhook
    answered = sandbox.place_call(ACME, "+15125550178", "answered", duration=185)
    sandbox.wait_for_delivery(answered["webhookId"])
    placed = sandbox.place_call(ACME, CALLER, "no-answer")
    sandbox.wait_for_delivery(placed["webhookId"])
    run_worker()

    client = served_app.test_client()
    sign_in(client, tb_settings, ACME)
    rows = activity(client)
    assert len(rows) == 2
    (ignored,) = [r for r in rows if "Not missed" in r]
    assert "Not texted: answered, 3 min 5 s" in ignored and "answered" in ignored
    assert activity(client, outcome="ignored") == [ignored]
    assert ignored not in activity(client, outcome="missed")
