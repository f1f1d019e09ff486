"""Every text the booking agent sends: short, plain, and one SMS segment where it can be (GSM-7, 160 characters).

No prices, no promises about when a tech arrives beyond the booked slot, no made-up facts about the business:
a price question is answered with "quoted on site", anything else the agent cannot answer goes to a person.
Each builder tries its fullest wording first and drops the optional parts until the text fits one segment;
`one_segment` is the last word (the business's name is what can make a text long).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from integration.agent.understanding import When, clock_text
from integration.textback.template import fit_to_segments, segment_info

__all__ = [
    "ask_job", "booked", "booking_unknown", "clarify", "clarify_choice", "confirm_one", "declined", "emergency",
    "hand_over", "offers", "one_segment", "slot_text", "wrong_number",
]

PRICE_NOTE = "Prices are quoted on site, not by text."


def one_segment(*candidates: str) -> str:
    """The first candidate that is one SMS segment; else the last one cut to fit."""
    for text in candidates:
        if segment_info(text).segments <= 1:
            return text
    return fit_to_segments(candidates[-1], 1)


def slot_text(moment: datetime, *, now: datetime | None = None) -> str:
    """ "Fri 3/6 9am" in the slot's own zone (the caller's)."""
    return f"{moment:%a} {moment.month}/{moment.day} {clock_text(moment.time())}"


def _zone_note(slots: Sequence[datetime], show_zone: bool) -> str:
    return f" ({slots[0].strftime('%Z')})" if show_zone and slots and slots[0].strftime("%Z") else ""


def offers(slots: Sequence[datetime], *, lead_in: str = "", price: bool = False, show_zone: bool = False) -> str:
    """ "I can send someone: 1) Fri 3/6 9am 2) ... Reply 1, 2 or 3, or name another day/time." """
    listed = " ".join(f"{index}) {slot_text(slot)}" for index, slot in enumerate(slots, start=1))
    zone = _zone_note(slots, show_zone)
    replies = "Reply 1, 2 or 3" if len(slots) == 3 else "Reply 1 or 2" if len(slots) == 2 else "Reply 1"
    lead = f"{lead_in} " if lead_in else ""
    price_note = f"{PRICE_NOTE} " if price else ""
    return one_segment(
        f"{lead}{price_note}I can send someone: {listed}{zone}. {replies}, or name another day/time.",
        f"{lead}{price_note}Open: {listed}{zone}. {replies}, or name another time.",
        f"{lead}{price_note}Open: {listed}{zone}. {replies}.",
        f"{lead}Open: {listed}{zone}. {replies}.",
        f"Open: {listed}{zone}. {replies}.",
    )


def confirm_one(slot: datetime, *, lead_in: str = "", price: bool = False, show_zone: bool = False) -> str:
    lead = f"{lead_in} " if lead_in else ""
    zone = _zone_note([slot], show_zone)
    price_note = f"{PRICE_NOTE} " if price else ""
    return one_segment(
        f"{lead}{price_note}{slot_text(slot)}{zone} is open. Reply YES to book it, or name another time.",
        f"{lead}{slot_text(slot)}{zone} is open. Reply YES to book it.",
    )


def booked(slot: datetime, *, business: str, price: bool = False, show_zone: bool = False) -> str:
    when = f"{slot_text(slot)}{_zone_note([slot], show_zone)}"
    who = business.strip() or "Our tech"
    price_note = f" {PRICE_NOTE}" if price else ""
    return one_segment(
        f"You're booked: {when}. {who} will see you then.{price_note} Reply here if anything changes.",
        f"You're booked: {when}. {who} will see you then.{price_note}",
        f"You're booked: {when}. See you then!{price_note}",
        f"You're booked: {when}. See you then!",
    )


def clarify_choice(slots: Sequence[datetime]) -> str:
    if len(slots) == 1:
        return one_segment(f"Reply YES to book {slot_text(slots[0])}, or name another day/time.")
    listed = " ".join(f"{index}) {slot_text(slot)}" for index, slot in enumerate(slots, start=1))
    numbers = "1, 2 or 3" if len(slots) == 3 else "1 or 2"
    return one_segment(f"Sorry, which one? {listed}. Reply {numbers}, or name another day/time.",
                       f"Which one? Reply {numbers}, or name another day/time.")


def ask_job() -> str:
    return "Happy to help! What's going on, and when would you like someone to come out?"


def clarify() -> str:
    return "Sorry, I didn't catch that. What do you need help with, and what day works for a visit?"


def hand_over(reason: str) -> str:
    texts = {
        "asked": "Sure, someone from our team will call you shortly.",
        "confused": "Sorry for the trouble. Someone from our team will call you shortly to sort it out.",
        "no_slots": "Thanks! Someone from our team will call you shortly to find a time that works.",
        "question": "Good question. Someone from our team will get back to you shortly.",
        "problem": "Thanks! Someone from our team will get back to you shortly.",
    }
    return texts.get(reason, texts["problem"])


def booking_unknown() -> str:
    return "Thanks! Someone from our team will confirm your time shortly."


def emergency(kind: str) -> str:
    if kind == "gas":
        return ("If you smell gas, leave the building now and call your gas company or 911 from outside. "
                "We've alerted our on-call tech.")
    if kind == "heat":
        return "Sorry you're without heat. We've alerted our on-call tech and help is being arranged; we'll call you."
    return ("We've alerted our on-call tech and help is being arranged; we'll call you. If you can, shut off the "
            "main water valve.")


def wrong_number() -> str:
    return "Sorry about that! We won't text you again."


def declined() -> str:
    return "No problem. If you need us later, just text or call this number."


def no_openings(when: When) -> str:
    return f"No openings {when.describe()}."


def slot_taken() -> str:
    return "Sorry, that time was just taken."
