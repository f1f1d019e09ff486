"""Every way a location's token is stored runs the events waiting for its install at once (oauth.install_wait):
a sub-account install (the OAuth callback), an agency's bulk install (every sub-account it provisions), a
Location INSTALL minted from the agency's token. Against the sandbox over real HTTP."""

from __future__ import annotations

import uuid

from integration.db import utcnow
from integration.extensions import get_redis
from integration.models import WebhookEvent
from integration.sandbox.seed import SEED_COMPANY_ID, SEED_LOCATION_IDS
from oauth.events import handle_install, handle_uninstall
from workers.queues import WEBHOOKS_QUEUE, event_job_id, get_queue


def waiting_event(oauth, location_id: str) -> int:
    """A missed call a worker has already given back once to wait for the location's install."""
    with oauth.database.transaction() as session:
        row = WebhookEvent(dedupe_key=str(uuid.uuid4()), event_type="InboundMessage", location_id=location_id,
                           payload={"type": "InboundMessage", "locationId": location_id, "messageType": "CALL"},
                           status="pending", attempts=1, install_waits=1, received_at=utcnow(),
                           claimed_at=utcnow())
        session.add(row)
        session.flush()
        return row.id


def queued() -> list[str]:
    return get_queue(WEBHOOKS_QUEUE, get_redis()).get_job_ids()


def test_a_sub_account_install_runs_its_waiting_events(dance, oauth):
    location, other = SEED_LOCATION_IDS[0], SEED_LOCATION_IDS[1]
    mine, theirs = waiting_event(oauth, location), waiting_event(oauth, other)

    assert dance.install(location_id=location).status_code == 302

    assert event_job_id(mine, 1) in queued()
    assert event_job_id(theirs, 1) not in queued()


def test_an_agency_install_runs_the_waiting_events_of_every_sub_account_it_provisions(dance, oauth):
    events = [waiting_event(oauth, location) for location in SEED_LOCATION_IDS]

    assert dance.install(company_id=SEED_COMPANY_ID).status_code == 302

    assert sorted(job for job in queued() if job.endswith("-1")) == sorted(event_job_id(e, 1) for e in events)


def test_a_location_install_minted_from_the_agency_token_runs_its_waiting_events(dance, oauth, settings):
    assert dance.install(company_id=SEED_COMPANY_ID).status_code == 302
    location = SEED_LOCATION_IDS[2]
    handle_uninstall({"type": "UNINSTALL", "appId": settings.ghl_app_id, "locationId": location}, event_id=1)
    event = waiting_event(oauth, location)
    get_redis().flushdb()

    note = handle_install({"type": "INSTALL", "appId": settings.ghl_app_id, "installType": "Location",
                           "locationId": location, "companyId": SEED_COMPANY_ID}, event_id=2)

    assert "provisioned" in note
    assert queued() == [event_job_id(event, 1)]
