"""The dialogue policy, state by state: pure functions, no network, no clock."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from integration.agent import policy
from integration.agent.policy import Book, Memory, Offer, Reply, after_booking, decide, present_offers
from integration.agent.understanding import Heard, When, understand
from integration.textback.template import segment_info

AUSTIN = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 5, 15, 0, tzinfo=AUSTIN)  # a Thursday afternoon
SLOTS = [datetime(2026, 3, 6, 9, tzinfo=AUSTIN), datetime(2026, 3, 6, 10, tzinfo=AUSTIN),
         datetime(2026, 3, 10, 13, tzinfo=AUSTIN)]
OFFERED = Memory(state=policy.OFFERED, offered=tuple(s.isoformat() for s in SLOTS), job="leaking water heater")


def heard(text: str) -> Heard:
    return understand(text, now=NOW, zone=AUSTIN)


def test_a_job_with_a_day_is_answered_with_offers_for_that_day():
    decision = decide(Memory(), heard("yeah my water heater is leaking, can someone come tomorrow?"),
                      body="yeah my water heater is leaking, can someone come tomorrow?")
    assert isinstance(decision, Offer)
    assert decision.when == When(first_day=date(2026, 3, 6), last_day=date(2026, 3, 6))
    assert decision.memory.job.startswith("yeah my water heater")
    reply = present_offers(decision, SLOTS[:2])
    assert reply.memory.state == policy.OFFERED and len(reply.memory.offered) == 2
    assert reply.texts[0].startswith("I can send someone: 1) Fri 3/6 9am 2) Fri 3/6 10am.")


def test_no_openings_on_the_asked_day_says_so_and_offers_the_next_ones():
    decision = decide(Memory(), heard("can you come saturday?"))
    reply = present_offers(decision, [], fallback=SLOTS)
    assert reply.texts[0].startswith("No openings Sat Mar 7. I can send someone: 1) Fri 3/6 9am")
    assert reply.memory.offered == OFFERED.offered


def test_no_free_slot_at_all_hands_over():
    reply = present_offers(decide(Memory(), heard("my sink is clogged")), [], fallback=[])
    assert (reply.memory.state, reply.handover) == (policy.HANDED_OVER, "no free slot on the calendar to offer")
    assert reply.texts == ("Thanks! Someone from our team will call you shortly to find a time that works.",)


@pytest.mark.parametrize(("text", "index"), [("2", 1), ("#3", 2), ("second one pls", 1), ("the last one", 2),
                                             ("the Tuesday one", 2), ("10am works", 1), ("Fri 9am", 0),
                                             ("1 please", 0)])
def test_a_choice_of_an_offered_slot_books_exactly_that_slot(text, index):
    decision = decide(OFFERED, heard(text))
    assert isinstance(decision, Book)
    assert decision.slot == OFFERED.offered[index]


def test_a_time_that_matches_two_offers_is_asked_about():
    reply = decide(OFFERED, heard("friday works"))
    assert isinstance(reply, Reply) and reply.memory.offered == OFFERED.offered[:2]
    assert reply.texts[0].startswith("Sorry, which one? 1) Fri 3/6 9am 2) Fri 3/6 10am.")


def test_none_of_those_with_a_new_day_asks_for_new_offers():
    decision = decide(OFFERED, heard("none of those, Friday morning?"))
    assert isinstance(decision, Offer)
    assert decision.when.first_day == date(2026, 3, 6) and decision.when.latest == time(12)
    assert decision.exclude == OFFERED.offered


def test_anything_later_offers_after_the_last_offered_slot():
    decision = decide(OFFERED, heard("anything later?"))
    assert isinstance(decision, Offer) and decision.after == OFFERED.offered[-1]


def test_a_time_not_offered_is_offered_back_for_a_yes_then_booked():
    decision = decide(OFFERED, heard("tomorrow at 3"))
    assert isinstance(decision, Offer) and decision.single
    three = datetime(2026, 3, 6, 15, tzinfo=AUSTIN)
    reply = present_offers(decision, [three])
    assert reply.memory.state == policy.CONFIRMING and reply.memory.offered == (three.isoformat(),)
    assert reply.texts[0] == "Fri 3/6 3pm is open. Reply YES to book it, or name another time."
    book = decide(reply.memory, heard("yes"))
    assert isinstance(book, Book) and book.slot == three.isoformat()


def test_a_yes_to_three_offers_is_asked_which():
    reply = decide(OFFERED, heard("ok"))
    assert isinstance(reply, Reply) and reply.memory.misunderstood == 1
    assert reply.texts[0].startswith("Sorry, which one?")


def test_two_misunderstandings_in_a_row_hand_over_and_one_understood_text_resets_the_count():
    first = decide(OFFERED, heard("hmm"))
    assert first.memory.misunderstood == 1 and first.memory.state == policy.OFFERED
    second = decide(first.memory, heard("what"))
    assert second.memory.state == policy.HANDED_OVER
    assert second.handover == "two texts in a row the agent did not understand"
    assert second.texts == ("Sorry for the trouble. Someone from our team will call you shortly to sort it out.",)
    reset = decide(first.memory, heard("friday afternoon?"))  # understood: a new preference
    assert isinstance(reset, Offer) and reset.memory.misunderstood == 0
    out_of_range = decide(OFFERED, heard("4"))  # three were offered: a number that names none
    assert out_of_range.memory.misunderstood == 1 and out_of_range.texts[0].startswith("Sorry, which one?")


def test_an_unclear_first_text_gets_the_one_question_about_the_job():
    reply = decide(Memory(), heard("hi"))
    assert reply.memory.state == policy.ASKED_JOB and reply.memory.asked_job
    assert reply.texts == ("Happy to help! What's going on, and when would you like someone to come out?",)
    again = decide(reply.memory, heard("hello?"))
    assert again.memory.state == policy.HANDED_OVER  # the question is never asked twice


def test_a_price_question_is_answered_without_a_price_and_with_offers():
    decision = decide(Memory(), heard("how much do you charge to unclog a drain?"))
    assert isinstance(decision, Offer) and decision.price
    text = present_offers(decision, SLOTS).texts[0]
    assert text.startswith("Prices are quoted on site, not by text.") and "$" not in text
    on_offer = decide(OFFERED, heard("how much will it cost?"))
    assert isinstance(on_offer, Reply) and on_offer.memory.offered == OFFERED.offered
    assert "Prices are quoted on site" in on_offer.texts[0]


@pytest.mark.parametrize(("text", "kind", "words"), [
    ("I smell gas in the kitchen", "gas", "leave the building now and call your gas company or 911"),
    ("water everywhere!! pipe burst", "water", "shut off the main water valve"),
    ("no heat and it's 20 degrees", "heat", "help is being arranged"),
])
def test_an_emergency_alerts_on_call_tells_the_caller_and_hands_over(text, kind, words):
    for memory in (Memory(), OFFERED):
        reply = decide(memory, heard(text), body=text)
        assert (reply.alert, reply.handover, reply.memory.state) == (kind, "emergency", policy.HANDED_OVER)
        assert words in reply.texts[0]


@pytest.mark.parametrize(("text", "handover"), [("human please", "the caller asked for a person"),
                                                ("can someone call me", "the caller asked for a person"),
                                                ("do you do tankless water heaters?",
                                                 "a question the agent cannot answer")])
def test_a_person_is_asked_for_or_a_question_goes_to_the_team(text, handover):
    reply = decide(Memory(), heard(text))
    assert (reply.memory.state, reply.handover) == (policy.HANDED_OVER, handover)


def test_wrong_number_decline_and_stop_end_the_dialogue():
    wrong = decide(OFFERED, heard("wrong number"))
    assert (wrong.memory.state, wrong.texts) == (policy.CLOSED, ("Sorry about that! We won't text you again.",))
    declined = decide(OFFERED, heard("no thanks, we found someone"))
    assert declined.memory.state == policy.CLOSED and declined.note == "declined"
    stop = decide(OFFERED, heard("STOP"))
    assert (stop.memory.state, stop.texts) == (policy.STOPPED, ())


@pytest.mark.parametrize("state", sorted(policy.FINAL_STATES))
def test_final_states_never_speak_again(state):
    for text in ("2", "hello?", "can you come tomorrow", "I smell gas"):
        reply = decide(Memory(state=state, offered=OFFERED.offered), heard(text))
        assert isinstance(reply, Reply) and reply.texts == () and reply.memory.state == state


def test_after_the_booking_a_thanks_is_quiet_and_anything_else_goes_to_a_person():
    booked = Memory(state=policy.BOOKED, booked_start=SLOTS[0].isoformat())
    assert decide(booked, heard("thanks!")).texts == ()
    reply = decide(booked, heard("can you also look at my sink?"))
    assert reply.memory.state == policy.HANDED_OVER and reply.handover


def test_booking_outcomes():
    book = decide(OFFERED, heard("2"))
    done = after_booking(book, "booked", business="Acme Plumbing")
    assert done.memory.state == policy.BOOKED and done.memory.booked_start == OFFERED.offered[1]
    assert done.texts == ("You're booked: Fri 3/6 10am. Acme Plumbing will see you then. Reply here if anything "
                          "changes.",)
    taken = after_booking(book, "taken")
    assert isinstance(taken, Offer) and OFFERED.offered[1] in taken.exclude
    assert taken.lead_in == "Sorry, that time was just taken."
    unknown = after_booking(book, "unknown")
    assert unknown.memory.state == policy.HANDED_OVER and "check the calendar" in unknown.handover
    refused = after_booking(book, "refused")
    assert refused.memory.state == policy.HANDED_OVER


def test_every_text_is_one_segment():
    business = "Acme Plumbing, Heating and Air Conditioning of Greater Austin LLC"
    texts = [present_offers(decide(Memory(), heard("how much? can you come next week")), SLOTS,
                            show_zone=True).texts[0],
             after_booking(decide(OFFERED, heard("2 works, what's the price?")), "booked", business=business).texts[0],
             *(decide(Memory(), heard(t)).texts[0] for t in ("I smell gas", "no heat", "flooding", "human", "hi"))]
    for text in texts:
        assert segment_info(text).segments == 1, text


def test_memory_round_trips_through_json():
    memory = Memory(state=policy.CONFIRMING, offered=("2026-03-06T15:00:00-06:00",), misunderstood=1, job="x")
    assert Memory.from_json({**memory.to_json(), "_caller": {"zone": "America/Chicago"}}) == memory
