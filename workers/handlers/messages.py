"""InboundMessage and OutboundMessage webhooks: missed calls in, our own echoes and people's texts out.

A missed call is classified under the location's options, stored once per call (duplicate webhooks
with new ids land on the same row) and handed to the exactly-once sender. Anything that is not a
missed call is marked ignored with the reason ("answered for 120 s", "outbound call"). Once a call
is texted, and for every SMS either way, the CRM follow-up (workers/crm.py) takes it from there.
"""

from __future__ import annotations

from integration.db import utcnow
from integration.extensions import db
from integration.textback.conversation import record_inbound_sms, record_outbound_message
from integration.textback.missed_call import NotMissed, classify_call, is_call
from integration.textback.models import MissedCall
from integration.textback.sender import TryAgainLater
from integration.textback.settings import DEFAULT_SETTINGS, SettingsError
from workers.crm import follow_up_inbound_sms, follow_up_missed_call, follow_up_outbound_message
from workers.errors import EventIgnored, RetryLater
from workers.textback import get_sender

__all__ = ["handle_inbound_message", "handle_outbound_message"]


def handle_inbound_message(payload: dict, *, event_id: int) -> str | None:
    """A call (missed or not) or an inbound SMS; other channels are ignored."""
    if is_call(payload):
        return _handle_call(payload, event_id=event_id)
    if str(payload.get("messageType") or "").upper() == "SMS":
        sender = get_sender()
        note = record_inbound_sms(db, payload, now=utcnow(), lookup_phone=lambda loc, cid: (
            sender.client.get_contact(loc, cid).get("phone")))
        return _with(note, follow_up_inbound_sms(payload))
    raise EventIgnored(f"{payload.get('messageType') or 'unknown'} messages are not used by text back")


def handle_outbound_message(payload: dict, *, event_id: int) -> str | None:
    """Our own text's echo, or a person's text (recorded for human takeover)."""
    direction = str(payload.get("direction") or "").lower()
    if is_call(payload) and direction == "inbound":
        # NOTE: HighLevel's own example labels an inbound call "OutboundMessage" (InboundMessage.2.json).
        return _handle_call(payload, event_id=event_id)
    if str(payload.get("messageType") or "").upper() != "SMS":
        raise EventIgnored(f"outbound {payload.get('messageType') or 'message'}: not used by text back")
    note = record_outbound_message(db, payload, now=utcnow())
    return _with(note, follow_up_outbound_message(payload))


def _handle_call(payload: dict, *, event_id: int) -> str:
    sender = get_sender()
    counted, short_seconds = _classification_options(sender, str(payload.get("locationId") or ""))
    result = classify_call(payload, counted_statuses=counted, short_call_seconds=short_seconds,
                           fallback_key=str(event_id))
    if isinstance(result, NotMissed):
        raise EventIgnored(f"not a missed call: {result.reason}")
    missed_call_id, first = sender.record(result, event_id=event_id)
    if not first:
        with db.session() as session:
            row = session.get(MissedCall, missed_call_id)
            if row.is_final or row.status == MissedCall.DEFERRED:
                # A lost follow-up of the first webhook is repaired here too (it is idempotent).
                follow_up_missed_call(missed_call_id)
                return f"duplicate webhook for missed call {missed_call_id} ({row.outcome or row.status})"
    try:
        outcome = sender.process(missed_call_id)
    except TryAgainLater as exc:
        raise RetryLater(f"missed call {missed_call_id}: {exc.reason}", delay_seconds=exc.delay_seconds) from exc
    return _with(f"missed call {missed_call_id}: {outcome}", follow_up_missed_call(missed_call_id))


def _with(note: str, follow_up: str | None) -> str:
    """The inbox note, with what the CRM follow-up did (if anything)."""
    return f"{note}; {follow_up}" if follow_up else note


def _classification_options(sender, location_id: str) -> tuple[tuple[str, ...], int]:
    """The location's "what counts as missed" options; the defaults when its settings cannot be read."""
    try:
        with db.session() as session:
            _, settings = sender.gatherer.settings_for(session, location_id)
    except SettingsError:
        # The sender records the settings problem on the call; classify with the defaults meanwhile.
        return tuple(DEFAULT_SETTINGS["missed_statuses"]), DEFAULT_SETTINGS["short_call_seconds"]
    return settings.missed_statuses, settings.short_call_seconds
