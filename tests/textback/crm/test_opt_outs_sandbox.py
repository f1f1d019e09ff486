"""STOP and START in the sandbox: nothing is sent after STOP, SMS DND is set through the API only when
HighLevel has not set it, START lifts our suppression (and a DND we set), and ContactDndUpdate keeps
our view current."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from integration.crm.models import CrmAction, CrmContact
from integration.extensions import db
from integration.textback.models import Caller, MissedCall
from integration.textback.opt_out import is_opt_in, is_opt_out
from tests.textback.conftest import ACME
from tests.textback.crm.conftest import actions_of, lead_of
from tests.textback.helpers import texts_to

CALLER = "+15125550177"


def dnd_actions(contact_id: str) -> list[CrmAction]:
    with db.session() as session:
        return list(session.scalars(select(CrmAction).where(CrmAction.contact_id == contact_id,
                                                            CrmAction.kind == "dnd").order_by(CrmAction.id)))


def contact_puts(sandbox, contact_id: str) -> list[dict]:
    return sandbox.requests_log(path=f"^/contacts/{contact_id}$", method="PUT")


def caller_row() -> Caller | None:
    with db.session() as session:
        return session.get(Caller, (ACME, CALLER))


def last_missed_call() -> MissedCall:
    with db.session() as session:
        return session.scalar(select(MissedCall).order_by(MissedCall.id.desc()))


@pytest.fixture
def no_cooldown(set_location_settings):
    """Every call may be texted again at once: only the opt-out can stop a second text."""
    set_location_settings(cooldown_hours=0)


@pytest.mark.parametrize("body", ["stop please", "Please stop", "unsubscribe me", "STOP IT", "Opt me out.", "unsub",
                                  "ok stop", "revoke consent"])
def test_obvious_variants_of_stop_are_opt_outs(body):
    assert is_opt_out(body) and not is_opt_in(body)


@pytest.mark.parametrize("body", ["please stop by tomorrow", "stop the leak please", "end of the driveway"])
def test_replies_mentioning_stop_words_are_not_opt_outs(body):
    assert not is_opt_out(body)


def test_stop_suppresses_at_once_and_highlevels_own_dnd_is_not_set_twice(story, sandbox, no_cooldown):
    placed = story.call(CALLER)
    contact_id = placed["contactId"]

    story.reply(CALLER, "STOP")

    view = story.highlevel(contact_id)
    assert view.sms_dnd  # HighLevel switched it on for the carrier keyword
    [dnd] = dnd_actions(contact_id)
    assert (dnd.status, dnd.outcome, dnd.result_id) == ("done", "HighLevel had SMS DND on already", "already")
    assert contact_puts(sandbox, contact_id) == []
    assert caller_row().opted_out_at is not None
    assert lead_of(contact_id).replied_at is None  # an opt-out is not a reply: no task
    assert view.tasks == [] and view.tags == ["missed-call"]

    story.call(CALLER)
    assert last_missed_call().status == "skipped"
    assert len(texts_to(sandbox, ACME, contact_id)) == 1  # nothing sent after STOP

    story.reply(CALLER, "START")
    assert caller_row().opted_out_at is None
    assert len(dnd_actions(contact_id)) == 1  # we did not set HighLevel's DND, so we do not lift it
    assert contact_puts(sandbox, contact_id) == []


@pytest.mark.parametrize("word", ["Revoke", "Please stop texting me"])
def test_an_opt_out_highlevel_ignores_sets_dnd_through_the_api_and_start_lifts_it(story, sandbox, no_cooldown, word):
    placed = story.call(CALLER)
    contact_id = placed["contactId"]

    story.reply(CALLER, word)

    assert story.highlevel(contact_id).sms_dnd
    assert len(contact_puts(sandbox, contact_id)) == 1
    [dnd] = dnd_actions(contact_id)
    assert (dnd.outcome, dnd.result_id) == ("turned SMS DND on at HighLevel", "set")
    with db.session() as session:
        assert session.get(CrmContact, (ACME, contact_id)).sms_dnd is True  # the ContactDndUpdate came back
    story.call(CALLER)
    assert len(texts_to(sandbox, ACME, contact_id)) == 1

    story.reply(CALLER, "START")

    assert not story.highlevel(contact_id).sms_dnd
    assert [a.outcome for a in dnd_actions(contact_id)] == ["turned SMS DND on at HighLevel",
                                                             "turned SMS DND off at HighLevel"]
    assert caller_row().opted_out_at is None
    story.call(CALLER)
    assert len(texts_to(sandbox, ACME, contact_id)) == 2


def test_dnd_switched_on_in_highlevel_suppresses_our_texts_and_off_lifts_only_that(story, sandbox, no_cooldown):
    placed = story.call(CALLER)
    contact_id = placed["contactId"]
    contact = story.highlevel(contact_id).contact
    update = {"type": "ContactDndUpdate", "locationId": ACME, "id": contact_id, "phone": CALLER, "dnd": False,
              "dndSettings": {"SMS": {"status": "active", "message": "set by the office", "code": "101"}},
              "dateAdded": contact["dateAdded"]}

    story.deliver(update)
    assert caller_row().opt_out_source == "HighLevel SMS DND"
    story.deliver({**update, "dndSettings": {"SMS": {"status": "inactive"}}})
    assert caller_row().opted_out_at is None

    # A STOP the caller sent is theirs: HighLevel's DND going off does not lift it.
    story.reply(CALLER, "revoke")
    story.deliver({**update, "dndSettings": {"SMS": {"status": "inactive"}}})
    assert caller_row().opted_out_at is not None
    assert caller_row().opt_out_source.startswith("replied")
    assert actions_of(contact_id)["tag"].status == "done"
