"""When the existing-customer check searches open opportunities, and what it makes of them (pure rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integration.textback.customers import customer_opportunity, search_needed, texted_before
from integration.textback.guards import ContactFacts
from integration.textback.settings import effective_settings

CALLED_AT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
OLD_CONTACT = {"id": "c1", "dateAdded": "2025-01-06T15:00:00.000Z"}


def needed(contact: dict, *, skipped_anyway: bool = False, **existing) -> bool:
    settings = effective_settings(location_values={"existing_customers": existing} if existing else None)
    return search_needed(contact, ContactFacts.from_api(contact), settings=settings, called_at=CALLED_AT,
                         skipped_anyway=skipped_anyway)


def test_only_an_older_undecided_contact_whose_text_can_go_is_searched():
    assert needed(OLD_CONTACT)
    created_by_the_call = {**OLD_CONTACT, "dateAdded": "2026-03-02T14:59:58.000Z"}
    assert not needed(created_by_the_call)
    assert not needed({**OLD_CONTACT, "tags": ["Customer"]})  # the tag decides already
    assert not needed({**OLD_CONTACT, "type": "customer"})
    assert not needed({**OLD_CONTACT, "dnd": True})  # no text goes anyway
    assert not needed({**OLD_CONTACT, "dndSettings": {"SMS": {"status": "active"}}})
    assert not needed(OLD_CONTACT, skipped_anyway=True)  # opted out, cooldown or daily cap
    assert not needed(OLD_CONTACT, open_opportunity=False)
    assert not needed(OLD_CONTACT, action="same")


@pytest.mark.parametrize(("hours_ago", "opted_out", "expected"), [
    (48, False, True), (23, False, False), (48, True, False), (None, False, False)])
def test_a_contact_texted_for_an_earlier_call_is_searched_early_only_past_the_cooldown(hours_ago, opted_out,
                                                                                     expected):
    earlier = None if hours_ago is None else CALLED_AT - timedelta(hours=hours_ago)
    assert texted_before(earlier, opted_out=opted_out, settings=effective_settings(), now=CALLED_AT) is expected


def test_open_opportunities_outside_the_ignored_pipelines_make_a_customer_and_names_are_asked_only_when_needed():
    asked = []

    def names(ids):
        asked.append(ids)
        return {"p-missed": "Missed Call", "p-sales": "Sales"}

    settings = effective_settings()
    assert customer_opportunity([], settings=settings, pipeline_names=names) is None
    assert customer_opportunity([{"name": "Old", "status": "won", "pipelineId": "p-sales"}], settings=settings,
                                pipeline_names=names) is None
    assert asked == []  # nothing open: no pipeline names needed
    found = [{"name": "Missed call", "pipelineId": "p-missed"}, {"name": "Water heater", "pipelineId": "p-sales"}]
    assert customer_opportunity(found, settings=settings, pipeline_names=names) == "Water heater"
    assert asked == [{"p-missed", "p-sales"}]
    assert customer_opportunity(found[:1], settings=settings, pipeline_names=names) is None
