"""Opt-out replies: a caller who answers STOP (or the like) gets no further automated text.

HighLevel also sets the contact's SMS DND on STOP; this is the second, immediate guard (suppression
takes effect before the next send decision, reliability-catalogue §1.11). Only a reply that is
nothing but an opt-out phrase counts here; full reply understanding belongs to a later capability.
"""

from __future__ import annotations

import re

__all__ = ["OPT_OUT_PHRASES", "is_opt_out"]

# FCC 24-24 keywords plus the usual carrier ones.
OPT_OUT_PHRASES = frozenset({
    "stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "revoke", "opt out", "optout",
    "opt-out", "remove", "remove me", "stop texting", "stop texting me", "do not text", "dont text",
    "don't text", "do not text me", "no more texts", "leave me alone",
})
_PUNCTUATION = re.compile(r"[^\w\s'-]+")


def is_opt_out(body: str | None) -> bool:
    """True when the whole reply is an opt-out phrase ("STOP", "Stop.", "stop please", "Unsubscribe!")."""
    if not body:
        return False
    text = " ".join(_PUNCTUATION.sub(" ", body.lower()).split())
    text = re.sub(r"\s+(please|pls|now|thanks|thank you)$", "", text)
    return text in OPT_OUT_PHRASES
