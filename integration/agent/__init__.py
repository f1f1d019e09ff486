"""The booking agent: when nobody is free, it keeps a replying caller's conversation going and books the job.

One concept per module:

- settings       the "agent" section of the settings document (on/off, calendar, grace period, hourly cap)
- models         AgentConversation (state, lease, booking), AgentInbound (a caller's text, once), AgentOutbound
                 (a text we owe the caller, written before it is sent)
- understanding  what a caller's text says: intent, emergency, slot choice, dates and times (rules + dateparser)
- llm            optional OpenAI-compatible model for understanding only; schema-checked, falls back to the rules
- policy         the deterministic dialogue policy: a pure state machine from (memory, what was heard) to a decision
- slots          free slots of the calendar in the caller's time zone: the next three, by preference, re-checked
- wording        every text the agent sends, each one SMS segment (GSM-7, 160 characters) where it can be
- handover       the team's task, the summary note, the on-call alert: CrmActions on the existing paths
- outbox         sending what the agent owes exactly once, after the guards (takeover, STOP, quiet hours, cap)
- engine         one turn: claim the conversation, understand, decide, fetch/book, store, send

It acts only for a location whose agent is on with a calendar, for a caller who replied to a text-back, and while
no person has texted them (integration.crm.takeover). The worker side is workers/agent.py.

This package's __init__ imports nothing: integration.textback.settings imports agent.settings at import time.
"""
