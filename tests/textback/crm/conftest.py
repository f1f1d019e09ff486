"""Fixtures for the CRM follow-up against the sandbox over real HTTP, with PostgreSQL (or SQLite) and Redis.

`story` drives the whole path the way production runs it: the sandbox places a call or a reply and
delivers its signed webhook to our app on a real port; the receiver stores it in the inbox; an RQ
worker runs the handler, the text back and the CRM action jobs; the sandbox's own webhooks for what
we changed (tags, notes, opportunities, DND) come back the same way. `settle()` repeats that until
nothing is left in flight. What HighLevel holds is read from the sandbox's world (the ground truth).

The runner retries at once (backoff 0) and gives up after 4 attempts, so a test sees every retry
and the final failure without waiting minutes.
"""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from integration.crm.models import CrmAction, CrmLead
from integration.crm.runner import CrmActionRunner
from integration.extensions import db, get_redis
from integration.models import WebhookEvent
from integration.sandbox.seed import SEED_MISSED_CALL_PIPELINE_IDS, stage_id
from tests.textback.conftest import ACME
from workers.crm import schedule_action
from workers.jobs import process_event
from workers.queues import DEFAULT_QUEUE, NEW_EVENTS_KEY, SERIALIZER, WEBHOOKS_QUEUE, get_queue
from workers.worker import TextbackSimpleWorker

MISSED_CALL_PIPELINE = SEED_MISSED_CALL_PIPELINE_IDS[ACME]
STAGES = {name: stage_id(MISSED_CALL_PIPELINE, name) for name in ("New Lead", "Replied", "Booked", "Won")}
_FINAL_DELIVERY = {"delivered", "failed", "gave_up"}


@dataclass
class HighLevelView:
    """One contact as the sandbox holds it: tags, DND, notes, tasks and opportunities."""

    contact: dict
    notes: list[dict] = field(default_factory=list)
    tasks: list[dict] = field(default_factory=list)
    opportunities: list[dict] = field(default_factory=list)

    @property
    def tags(self) -> list[str]:
        return list(self.contact["tags"])

    @property
    def sms_dnd(self) -> bool:
        return self.contact["dndSettings"].get("SMS", {}).get("status") == "active"


class Story:
    """Drive the sandbox and run everything that follows until it settles."""

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox

    def call(self, number: str, outcome: str = "no-answer") -> dict:
        placed = self.sandbox.place_call(ACME, number, outcome)
        self.settle()
        return placed

    def reply(self, number: str, body: str) -> dict:
        sent = self.sandbox.reply(ACME, number, body)
        self.settle()
        return sent

    def deliver(self, payload: dict) -> dict:
        """Have the sandbox sign and deliver an arbitrary webhook (a replay, an older event, ...)."""
        delivery = self.sandbox.control("POST", "webhooks", {"payload": payload})
        self.settle()
        return delivery

    def held(self, action: str, *args) -> dict:
        """Do a sandbox action ("place_call", "reply") whose webhook reaches our inbox but is not run yet."""
        result = getattr(self.sandbox, action)(ACME, *args)
        assert self.sandbox.wait_for_delivery(result["webhookId"])["state"] == "delivered"
        return result

    def deliver_held(self, payload: dict) -> str:
        """Deliver an arbitrary webhook to our inbox without running it; its webhookId."""
        delivery = self.sandbox.control("POST", "webhooks", {"payload": payload})
        assert delivery["state"] == "delivered", delivery
        return delivery["webhookId"]

    def process(self, webhook_id: str) -> str:
        """Run one stored webhook now, ahead of whatever else is queued (to play events out of order)."""
        with db.session() as session:
            event_id = session.scalar(select(WebhookEvent.id).where(WebhookEvent.dedupe_key == webhook_id))
        assert event_id is not None, f"webhook {webhook_id} is not in the inbox"
        return process_event(event_id)

    def settle(self, *, timeout: float = 30.0) -> None:
        """Deliver every webhook, run every job they cause, until nothing new happens."""
        deadline = time.monotonic() + timeout
        queues = [get_queue(name, get_redis()) for name in (WEBHOOKS_QUEUE, DEFAULT_QUEUE)]
        while True:
            self._wait_for_deliveries(deadline)
            seen = len(self.sandbox.deliveries())
            worker = TextbackSimpleWorker(queues, connection=get_redis(), serializer=SERIALIZER)
            worker.work(burst=True, with_scheduler=True)
            self._wait_for_deliveries(deadline)
            announced = get_redis().llen(NEW_EVENTS_KEY)
            if len(self.sandbox.deliveries()) == seen and not announced and not any(q.count for q in queues):
                return
            if time.monotonic() > deadline:
                raise AssertionError("the story did not settle in time")

    def _wait_for_deliveries(self, deadline: float) -> None:
        while any(d["state"] not in _FINAL_DELIVERY for d in self.sandbox.deliveries()):
            if time.monotonic() > deadline:
                raise AssertionError("webhooks still in flight")
            time.sleep(0.02)

    def highlevel(self, contact_id: str) -> HighLevelView:
        state = self.sandbox.server.state
        with state.lock:
            world = state.world
            return HighLevelView(
                contact=copy.deepcopy(world.contacts[contact_id]),
                notes=[copy.deepcopy(n) for n in world.notes.values() if n["contactId"] == contact_id],
                tasks=[copy.deepcopy(t) for t in world.tasks.values() if t["contactId"] == contact_id],
                opportunities=[copy.deepcopy(o) for o in world.opportunities.values()
                               if o["contactId"] == contact_id],
            )


def person_text(placed: dict, body: str, *, user_id: str | None, seconds_after: float = 1.0,
                message_id: str | None = None) -> dict:
    """An OutboundMessage SMS sent in the caller's conversation by a person (a userId) or, without one, a workflow."""
    when = datetime.now(UTC) + timedelta(seconds=seconds_after)
    payload = {"type": "OutboundMessage", "locationId": ACME, "attachments": [], "body": body,
               "contactId": placed["contactId"], "contentType": "text/plain",
               "conversationId": placed["conversationId"], "dateAdded": when.isoformat().replace("+00:00", "Z"),
               "direction": "outbound", "messageType": "SMS", "source": "app" if user_id else "workflow",
               "status": "delivered", "messageId": message_id or f"person{uuid.uuid4().hex[:14]}"}
    if user_id:
        payload["userId"] = user_id
    return payload


def lead_of(contact_id: str) -> CrmLead | None:
    with db.session() as session:
        return session.scalar(select(CrmLead).where(CrmLead.contact_id == contact_id).order_by(CrmLead.id.desc()))


def actions_of(contact_id: str) -> dict[str, CrmAction]:
    """The contact's CRM actions by key suffix ("tag", "note", "opportunity", "stage:replied", ...)."""
    with db.session() as session:
        rows = session.scalars(select(CrmAction).where(CrmAction.contact_id == contact_id).order_by(CrmAction.id))
        return {row.key.split(":", 2)[-1] if row.key.startswith("lead:") else row.key: row for row in rows}


@pytest.fixture
def crm_runner(tb_app, live_sender):
    """The app's CRM runner, retrying at once and giving up after 4 attempts."""
    runner = CrmActionRunner(database=db, client=live_sender.client, gatherer=live_sender.gatherer,
                             schedule=schedule_action, backoff=(0,), max_attempts=4)
    tb_app.extensions["crm.runner"] = runner
    yield runner
    tb_app.extensions.pop("crm.runner", None)


@pytest.fixture
def story(served_app, sandbox, install, set_location_settings, crm_runner) -> Story:
    """Acme Plumbing installed, its INSTALL webhook processed, calls of any age in the test clock's week."""
    install(ACME)
    # The test clock may be up to a weekend ahead of the call (see live_sender): do not call it stale.
    set_location_settings(max_call_age_minutes=7 * 24 * 60)
    story = Story(sandbox)
    story.settle()
    return story
