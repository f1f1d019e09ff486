"""Missed-call text back: what counts as missed, the guard chain, the message and exactly-once sending.

One concept per module:

- settings        the per-location settings document (marshmallow) and its day-one defaults
- missed_call     classify an InboundMessage payload: Missed, or NotMissed with the reason
- phone           E.164 normalisation, anonymous callers, landlines, the time zones and state of a number
- quiet_hours     the allowed sending windows (federal and state rules) and the next allowed minute
- business_hours  open hours, holidays, and the next opening time
- template        safe placeholder rendering and SMS segment counting
- guards          the guard chain: Proceed, Skip(reason) or Defer(until, reason); pure
- facts           gathers what the guards need: our database, the contact, the cached profile
- profiles        the location's profile (name, numbers, users), kept warm in Redis for the send
- customers       when the existing-customer check searches open opportunities, and what it finds
- cache           Redis entries served while stale, never rewritten with an answer older than an invalidation
- together        a few HighLevel reads at once, so a call waits on the slowest, not on their sum
- compose         the placeholder values for one call and the rendered body
- models          MissedCall, SendIntent, Caller, DailySendCount, ConversationMessage rows
- intents         every state change of a call and its send intent, as conditional writes
- sender          exactly-once sending: reserve, re-check, send, reconcile after ambiguous failures
- conversation    our own OutboundMessage echo, people's texts, caller replies (minimal log)
- opt_out         STOP-like replies and START

The worker side (handlers, the deferred-send job and its sweep) is in workers/handlers/messages.py
and workers/textback.py.
"""
