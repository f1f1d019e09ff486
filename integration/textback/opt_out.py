"""Opt-out replies: a caller who answers STOP (or the like) gets no further automated text.

HighLevel also sets the contact's SMS DND on STOP; this is the second, immediate guard (suppression
takes effect before the next send decision, reliability-catalogue §1.11). Only a reply that is
nothing but an opt-out phrase counts here; full reply understanding belongs to a later capability.
"""

from __future__ import annotations

import re

__all__ = ["OPT_IN_PHRASES", "OPT_OUT_PHRASES", "is_opt_in", "is_opt_out"]

# FCC 24-24 keywords plus the usual carrier ones.
OPT_OUT_PHRASES = frozenset({
    "stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "revoke", "opt out", "optout",
    "opt-out", "remove", "remove me", "stop texting", "stop texting me", "do not text", "dont text",
    "don't text", "do not text me", "no more texts", "leave me alone",
    # Obvious variants people type.
    "stop it", "stop all texts", "stop texts", "stop sms", "stop messaging me", "stop messages", "stop contacting me",
    "unsubscribe me", "opt me out", "opt out please", "end all", "quit all", "cancel all", "cancel texts",
    "revoke consent", "unsub",
})
# Carrier keywords that undo an opt-out.
OPT_IN_PHRASES = frozenset({"start", "unstop", "resume"})
_PUNCTUATION = re.compile(r"[^\w\s'-]+")


def is_opt_out(body: str | None) -> bool:
    """True when the whole reply is an opt-out phrase ("STOP", "Stop.", "stop please", "Unsubscribe!")."""
    return _phrase(body) in OPT_OUT_PHRASES


def is_opt_in(body: str | None) -> bool:
    """True when the whole reply is START / UNSTOP / RESUME."""
    return _phrase(body) in OPT_IN_PHRASES


def _phrase(body: str | None) -> str:
    if not body:
        return ""
    text = " ".join(_PUNCTUATION.sub(" ", body.lower()).split())
    text = re.sub(r"^(please|pls|ok|okay)\s+", "", text)
    return re.sub(r"\s+(please|pls|now|thanks|thank you)$", "", text)
