"""Missed-call text back: what counts as missed, the guard chain, the message and exactly-once sending.

One concept per module:

- settings        the per-location settings document (marshmallow) and its day-one defaults
- missed_call     classify an InboundMessage payload: a MissedCall, or the reason it is not one
- phone           E.164 normalisation, anonymous callers, the time zones and state of a number
- quiet_hours     the allowed sending windows (federal and state rules) and the next allowed minute
- business_hours  open hours, holidays, and the next opening time
- template        safe placeholder rendering and SMS segment counting
- guards          the guard chain: Proceed, Skip(reason) or Defer(until, reason); pure
- facts           gathers what the guards need (database and HighLevel API)
- models          MissedCall, SendIntent, Caller, DailySendCount, ConversationMessage rows
- sender          exactly-once sending: intent, re-check, send, reconcile after ambiguous failures
"""
