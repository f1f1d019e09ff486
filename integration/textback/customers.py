"""Is the caller an existing customer because of an open opportunity? Asked only when the answer can change the text.

The setting `existing_customers.open_opportunity` (on by default) makes a contact with an open opportunity a
customer, except in the pipelines it ignores by name (the missed-call pipeline holds every earlier caller).
Finding out is `GET /opportunities/search`, a HighLevel call on the way to the send, so it is skipped
whenever it cannot matter:

- the setting is off, or customers get the same text as anyone;
- the contact was created by this very call (a first-time caller has no opportunity yet): the common case;
- the contact's tags or type already make them a customer;
- the text will not go anyway (the contact has DND on, or our records say the caller opted out or was
  texted within the cooldown).

When it can matter for a caller we texted for an earlier call (their contact certainly predates this one),
the search is started together with the contact read instead of after it (integration.textback.facts): no
extra wait.
Only a contact we have never texted, not created by the call and not tagged, costs one read after the
contact. It is not cached: the same caller calling again soon is inside the cooldown (no search at all), and
a cached "no opportunity" could miss one opened minutes ago.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from integration.textback.guards import ContactFacts
from integration.textback.missed_call import parse_timestamp
from integration.textback.settings import TextBackSettings

__all__ = ["NEW_CONTACT_WINDOW", "created_with_the_call", "customer_opportunity", "search_can_matter",
           "search_needed", "texted_before"]

# A contact created this shortly before the call was created by it (a first-time caller).
NEW_CONTACT_WINDOW = timedelta(minutes=2)


def search_can_matter(settings: TextBackSettings) -> bool:
    """Whether these settings ever look at open opportunities."""
    return settings.existing_open_opportunity and settings.existing_action != "same"


def created_with_the_call(contact: Mapping, called_at: datetime | None) -> bool:
    """HighLevel creates a first-time caller's contact with the call."""
    created = parse_timestamp(contact.get("dateAdded"))
    return created is not None and called_at is not None and created >= called_at - NEW_CONTACT_WINDOW


def search_needed(contact: Mapping, facts: ContactFacts, *, settings: TextBackSettings,
                  called_at: datetime | None, skipped_anyway: bool = False) -> bool:
    """Whether the open-opportunity search can change this contact's text (see the module docstring).

    `skipped_anyway`: our own records already skip the text (opted out, cooldown, daily cap).
    """
    if not search_can_matter(settings) or facts.sms_blocked or skipped_anyway:
        return False
    if created_with_the_call(contact, called_at):
        return False
    if facts.tags & settings.existing_tags:
        return False
    return not (facts.contact_type and facts.contact_type in settings.existing_contact_types)


def texted_before(earlier_text_at: datetime | None, *, opted_out: bool, settings: TextBackSettings,
                  now: datetime) -> bool:
    """We texted this contact for an earlier call (at `earlier_text_at`), the cooldown has passed and they did not
    opt out: their contact predates this call and the text can go, so the search is worth starting before the
    contact is read. (Call webhooks carry the contact id, not the caller's number: our sent texts are looked up
    by contact.)"""
    if earlier_text_at is None or opted_out:
        return False
    return now - earlier_text_at >= timedelta(hours=settings.cooldown_hours)


def customer_opportunity(opportunities: Iterable[Mapping], *, settings: TextBackSettings,
                         pipeline_names: Callable[[set[str]], Mapping[str, str]]) -> str | None:
    """The name of the first open opportunity outside the ignored pipelines, else None.

    `pipeline_names(ids)` names those pipelines; it is asked only when there is an open opportunity to judge.
    """
    still_open = [o for o in opportunities if str(o.get("status") or "open").lower() == "open"]
    if not still_open:
        return None
    names: Mapping[str, str] = {}
    if settings.existing_ignore_pipelines:
        names = pipeline_names({str(o.get("pipelineId")) for o in still_open if o.get("pipelineId")})
    for opportunity in still_open:
        pipeline = names.get(str(opportunity.get("pipelineId")), "").strip().lower()
        if pipeline in settings.existing_ignore_pipelines:
            continue
        return str(opportunity.get("name") or "an opportunity")
    return None
