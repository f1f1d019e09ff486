"""The dialogue policy: a deterministic state machine, the default engine and the fallback of any model.

`decide(memory, heard)` maps the conversation's memory and one understood text to a Decision. Decisions that
need HighLevel (free slots, a booking) are carried out by the engine, which hands the result back to
`present_offers(...)` or `after_booking(...)`; every function here is pure (no clock, no I/O), so every state
and transition is tested on its own.

States:

    new         nothing said yet by the agent (the text-back asked "what can we help with?")
    asked_job   the agent asked its one question about the job
    offered     up to three free slots were offered (Memory.offered, ISO times in the caller's zone)
    confirming  one slot the caller named was offered back for a YES
    booked      the appointment exists; a thank-you gets no answer, anything else goes to a person
    handed_over, closed, silenced, stopped   final: the agent says nothing more

What it never does: book a slot that is not in Memory.offered (and the engine re-checks it is still free),
quote a price, or keep talking after STOP, a person's text, an emergency or a hand-over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, tzinfo

from integration.agent import wording
from integration.agent.understanding import (
    AFFIRM,
    BOOK,
    DECLINE,
    EMERGENCY,
    HUMAN,
    NO,
    QUESTION,
    QUOTE,
    STOP,
    THANKS,
    UNKNOWN,
    WRONG_NUMBER,
    Heard,
    When,
)

__all__ = [
    "ASKED_JOB", "BOOKED", "CLOSED", "CONFIRMING", "FINAL_STATES", "HANDED_OVER", "NEW", "OFFERED", "SILENCED",
    "STOPPED", "Book", "Decision", "Memory", "Offer", "Reply", "after_booking", "decide", "present_offers",
]

NEW, ASKED_JOB, OFFERED, CONFIRMING, BOOKED = "new", "asked_job", "offered", "confirming", "booked"
HANDED_OVER, CLOSED, SILENCED, STOPPED = "handed_over", "closed", "silenced", "stopped"
FINAL_STATES = frozenset({HANDED_OVER, CLOSED, SILENCED, STOPPED})
# Two texts in a row the agent could not make sense of: a person takes it from there.
MAX_MISUNDERSTANDINGS = 2


@dataclass(frozen=True)
class Memory:
    """What the agent remembers between texts (stored as JSON on AgentConversation.memory)."""

    state: str = NEW
    # ISO start times (with the caller's offset) of the slots offered last, in the order they were numbered.
    offered: tuple[str, ...] = ()
    misunderstood: int = 0
    asked_job: bool = False
    # The caller's first description of the job (for the appointment, the note and the task).
    job: str | None = None
    booked_start: str | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        data["offered"] = list(self.offered)
        return data

    @classmethod
    def from_json(cls, data: dict | None) -> Memory:
        data = dict(data or {})
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        known["offered"] = tuple(known.get("offered") or ())
        return cls(**known)

    def offered_slots(self) -> list[datetime]:
        return [datetime.fromisoformat(value) for value in self.offered]


@dataclass(frozen=True)
class Reply:
    """Say `texts` (maybe none) and move to `memory`; `handover`/`alert` ask the team to step in, with why."""

    memory: Memory
    texts: tuple[str, ...] = ()
    handover: str | None = None
    alert: str | None = None
    note: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Offer:
    """Find free slots (matching `when`, later than `after`, none of `exclude`) and offer them."""

    memory: Memory
    when: When | None = None
    after: str | None = None
    exclude: tuple[str, ...] = ()
    lead_in: str = ""
    price: bool = False
    # Offer back the one slot the caller named, for a YES (when it is free).
    single: bool = False


@dataclass(frozen=True)
class Book:
    """Re-check `slot` (one of Memory.offered) and book it."""

    memory: Memory
    slot: str
    price: bool = False


Decision = Reply | Offer | Book


def decide(memory: Memory, heard: Heard, *, body: str = "") -> Decision:
    """What to do with one text the caller sent."""
    state = memory.state
    if heard.intent == STOP:
        # HighLevel confirms a carrier STOP itself; we only fall silent (the opt-out path sets DND).
        return Reply(replace(memory, state=STOPPED), reason="the caller replied STOP")
    if state in FINAL_STATES:
        return Reply(memory, reason=f"the conversation is {state.replace('_', ' ')}")
    if heard.intent == EMERGENCY:
        return Reply(replace(memory, state=HANDED_OVER, job=memory.job or body[:300]),
                     texts=(wording.emergency(heard.emergency or "water"),), handover="emergency",
                     alert=heard.emergency or "water", reason=f"an emergency ({heard.emergency})")
    if heard.intent == HUMAN:
        return _hand_over(memory, "asked", "the caller asked for a person")
    if heard.intent == WRONG_NUMBER:
        return Reply(replace(memory, state=CLOSED), texts=(wording.wrong_number(),), note="wrong number",
                     reason="the caller says it is a wrong number")
    if state == BOOKED:
        if heard.intent in (THANKS, AFFIRM):
            return Reply(memory, reason="a thank-you after the booking")
        return _hand_over(memory, "problem", "the caller wrote again after the booking")
    if heard.intent == DECLINE:
        return Reply(replace(memory, state=CLOSED), texts=(wording.declined(),), note="declined",
                     reason="the caller does not need a visit")
    understood = replace(memory, misunderstood=0)
    if state in (OFFERED, CONFIRMING):
        return _choose(memory, understood, heard)
    return _open(memory, understood, heard, body=body)


def _open(memory: Memory, understood: Memory, heard: Heard, *, body: str) -> Decision:
    """New conversation, or after the one question about the job."""
    job = understood.job or (body[:300] if heard.mentions_job or heard.intent in (BOOK, QUOTE) else None)
    if heard.intent in (BOOK, QUOTE) or heard.when is not None:
        return Offer(replace(understood, job=job), when=heard.when, price=heard.asks_price,
                     single=_names_one_time(heard))
    if heard.intent == QUESTION:
        return _hand_over(memory, "question", "a question the agent cannot answer")
    if heard.intent == AFFIRM and memory.state == NEW:
        return Reply(replace(understood, state=ASKED_JOB, asked_job=True), texts=(wording.ask_job(),),
                     reason="asked about the job")
    if heard.intent in (NO, THANKS):
        return Reply(replace(memory, state=CLOSED), texts=(wording.declined(),), note="declined",
                     reason="the caller does not need a visit")
    if not memory.asked_job:
        return Reply(replace(memory, state=ASKED_JOB, asked_job=True, misunderstood=memory.misunderstood + 1),
                     texts=(wording.ask_job(),), reason="asked about the job")
    return _misunderstood(memory, wording.clarify())


def _choose(memory: Memory, understood: Memory, heard: Heard) -> Decision:
    """Slots are on offer: a number, a day or time that picks one, a new preference, or a yes."""
    offered = memory.offered_slots()
    if heard.choice is not None:
        index = len(offered) if heard.choice == -1 else heard.choice
        if 1 <= index <= len(offered):
            return Book(understood, slot=memory.offered[index - 1], price=heard.asks_price)
        return _misunderstood(memory, wording.clarify_choice(offered))
    if heard.rejects and (heard.when is None or heard.when.later):
        return Offer(understood, when=None, after=memory.offered[-1] if memory.offered else None,
                     exclude=memory.offered, price=heard.asks_price)
    if heard.when is not None and not heard.when.later:
        picked = [slot for slot in offered if heard.when.matches(slot)]
        if len(picked) == 1 and not heard.rejects:
            return Book(understood, slot=picked[0].isoformat(), price=heard.asks_price)
        if len(picked) > 1 and not heard.rejects:
            return Reply(replace(understood, offered=tuple(s.isoformat() for s in picked)),
                         texts=(wording.clarify_choice(picked),), reason="asked which of the matching slots")
        return Offer(understood, when=heard.when, exclude=memory.offered if heard.rejects else (),
                     price=heard.asks_price, single=_names_one_time(heard))
    if heard.intent == AFFIRM:
        if len(offered) == 1:
            return Book(understood, slot=memory.offered[0], price=heard.asks_price)
        return _misunderstood(memory, wording.clarify_choice(offered))
    if heard.intent == NO:
        return Offer(understood, after=memory.offered[-1] if memory.offered else None, exclude=memory.offered)
    if heard.intent == QUOTE or (heard.asks_price and heard.intent in (BOOK, QUESTION)):
        return Reply(understood, texts=(wording.offers(offered, lead_in="", price=True),),
                     reason="a price question: quoted on site")
    if heard.intent == QUESTION:
        return _hand_over(memory, "question", "a question the agent cannot answer")
    if heard.intent in (UNKNOWN, THANKS, BOOK):
        return _misunderstood(memory, wording.clarify_choice(offered))
    return _misunderstood(memory, wording.clarify_choice(offered))


def _names_one_time(heard: Heard) -> bool:
    return heard.when is not None and heard.when.exact is not None


def _misunderstood(memory: Memory, text: str) -> Reply:
    count = memory.misunderstood + 1
    if count >= MAX_MISUNDERSTANDINGS:
        return _hand_over(replace(memory, misunderstood=count), "confused",
                          "two texts in a row the agent did not understand")
    return Reply(replace(memory, misunderstood=count), texts=(text,), reason="did not understand; asked again")


def _hand_over(memory: Memory, kind: str, reason: str) -> Reply:
    return Reply(replace(memory, state=HANDED_OVER), texts=(wording.hand_over(kind),), handover=reason,
                 reason=reason)


# --- Results the engine brings back ---


def present_offers(decision: Offer, slots: Sequence[datetime], *, fallback: Sequence[datetime] = (),
                   show_zone: bool = False) -> Reply:
    """Offer `slots` (free ones matching the request); `fallback` are the next free ones when none matched."""
    memory = decision.memory
    lead_in = decision.lead_in
    shown = list(slots)
    if not shown and decision.when is not None and not decision.when.later and fallback:
        lead_in = f"{lead_in} {wording.no_openings(decision.when)}".strip()
        shown = list(fallback)
    if not shown and fallback:
        shown = list(fallback)
    if not shown:
        return _hand_over(memory, "no_slots", "no free slot on the calendar to offer")
    if decision.single and slots and decision.when is not None and decision.when.exact is not None \
            and slots[0].time().replace(second=0) == decision.when.exact:
        one = slots[0]
        return Reply(replace(memory, state=CONFIRMING, offered=(one.isoformat(),)),
                     texts=(wording.confirm_one(one, lead_in=lead_in, price=decision.price, show_zone=show_zone),),
                     reason=f"offered {wording.slot_text(one)} for a yes")
    shown = shown[:3]
    return Reply(replace(memory, state=OFFERED, offered=tuple(s.isoformat() for s in shown)),
                 texts=(wording.offers(shown, lead_in=lead_in, price=decision.price, show_zone=show_zone),),
                 reason=f"offered {len(shown)} slot(s)")


def after_booking(decision: Book, outcome: str, *, business: str = "", show_zone: bool = False,
                  zone: tzinfo | None = None) -> Decision:
    """What follows the booking attempt: "booked", "taken" (by someone else meanwhile), or "unknown"/"refused".

    `zone`: the caller's, for the confirmation's wording (the stored slot carries only its UTC offset).
    """
    memory = decision.memory
    slot = datetime.fromisoformat(decision.slot)
    slot = slot.astimezone(zone) if zone is not None else slot
    if outcome == "booked":
        return Reply(replace(memory, state=BOOKED, booked_start=decision.slot, offered=()),
                     texts=(wording.booked(slot, business=business, price=decision.price, show_zone=show_zone),),
                     note="booked", reason=f"booked {wording.slot_text(slot)}")
    if outcome == "taken":
        return Offer(memory, exclude=(*memory.offered, decision.slot), lead_in=wording.slot_taken(),
                     after=None)
    if outcome == "unknown":
        return Reply(replace(memory, state=HANDED_OVER), texts=(wording.booking_unknown(),),
                     handover="the booking may or may not have gone through: check the calendar",
                     reason="HighLevel did not say whether the booking went through")
    return _hand_over(memory, "problem", "HighLevel refused the booking")
