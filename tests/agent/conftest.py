"""Fixtures for the booking agent against the sandbox over real HTTP, with PostgreSQL and Redis.

The whole path runs as in production: the sandbox delivers signed webhooks to our app on a real port, an RQ
worker runs the handlers, the text back, the CRM actions and the agent's turns (Story.settle from the CRM
tests). The agent runs on the text back's test clock (a weekday afternoon in Austin, never in quiet hours);
its schedule maps that clock onto real time, so a turn due "in 2 minutes" of the clock is an RQ job due in 2
real minutes, and one due "now" runs in the same settle.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from integration.agent.engine import BookingAgent
from integration.agent.models import AgentConversation, AgentInbound, AgentOutbound
from integration.agent.settings import DEFAULT_AGENT_SETTINGS
from integration.crm.settings import DEFAULT_CRM_SETTINGS
from integration.db import utcnow
from integration.extensions import db, get_redis
from integration.sandbox.seed import SEED_CALENDAR_IDS
from tests.textback.conftest import (  # noqa: F401 - the text back's and the CRM's fixtures, shared
    ACME,
    clock,
    install,
    live_sender,
    make_sender,
    scheduled,
    served_app,
    set_location_settings,
    tb_app,
    tb_settings,
)
from tests.textback.crm.conftest import Story, crm_runner  # noqa: F401
from workers.agent import schedule_turn
from workers.crm import schedule_now
from workers.queues import DEFAULT_QUEUE, NEW_EVENTS_KEY, SERIALIZER, WEBHOOKS_QUEUE, get_queue
from workers.worker import TextbackSimpleWorker

CALENDAR = SEED_CALENDAR_IDS[ACME]
CALLER = "+15125550177"


class _QuietWorker(TextbackSimpleWorker):
    """A burst worker without the pubsub thread for "stop job" commands (nobody sends one here): on a busy machine
    stopping that thread sometimes took a minute, past the story's patience."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


class AgentStory(Story):
    """The CRM tests' Story, settling with the quiet worker."""

    def settle(self, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        queues = [get_queue(name, get_redis()) for name in (WEBHOOKS_QUEUE, DEFAULT_QUEUE)]
        while True:
            self._wait_for_deliveries(deadline)
            seen = len(self.sandbox.deliveries())
            _QuietWorker(queues, connection=get_redis(), serializer=SERIALIZER).work(burst=True, with_scheduler=True)
            self._wait_for_deliveries(deadline)
            announced = get_redis().llen(NEW_EVENTS_KEY)
            if len(self.sandbox.deliveries()) == seen and not announced and not any(q.count for q in queues):
                return
            if time.monotonic() > deadline:
                raise AssertionError("the story did not settle in time")


@pytest.fixture
def story(served_app, sandbox, install, set_location_settings, crm_runner) -> AgentStory:  # noqa: F811
    """Acme Plumbing installed, its INSTALL webhook processed (as the CRM tests' story)."""
    install(ACME)
    set_location_settings(max_call_age_minutes=7 * 24 * 60)
    story = AgentStory(sandbox)
    story.settle()
    return story


class AgentClock:
    """The test clock's instant, running on in real time; `advance()` jumps it (a grace period passing)."""

    def __init__(self, start: datetime, real_start: datetime) -> None:
        self.offset = start - real_start

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, **delta) -> None:
        self.offset += timedelta(**delta)


@pytest.fixture
def agent(tb_app, live_sender, clock, crm_runner):  # noqa: F811 - the fixtures imported above
    """The app's booking agent on the test clock (running on from it in real time), retrying at once (twice)
    before it hands over."""
    started = utcnow()
    agent_clock = AgentClock(clock.now, started)

    def schedule(conversation_id: int, when: datetime) -> None:
        delay = when - agent_clock()
        # A retry due in under a second runs in the same settle (a scheduled job would wait for the next).
        schedule_turn(conversation_id, utcnow() + (delay if delay >= timedelta(seconds=1) else timedelta(0)))

    engine = BookingAgent(database=db, client=live_sender.client, gatherer=live_sender.gatherer, schedule=schedule,
                          wake=schedule_now, retry_delays=(0.01, 0.02), clock=agent_clock)
    tb_app.extensions["agent.engine"] = engine
    yield engine
    tb_app.extensions.pop("agent.engine", None)


@pytest.fixture
def agent_on(set_location_settings):  # noqa: F811
    """Turn the agent on for Acme with its calendar (grace 0 unless told), an on-call contact number optional."""

    def apply(**options) -> None:
        crm = options.pop("crm", None)
        values = {"agent": {**DEFAULT_AGENT_SETTINGS, "enabled": True, "calendar_id": CALENDAR, "grace_minutes": 0,
                            **options}}
        if crm:
            values["crm"] = {**DEFAULT_CRM_SETTINGS, **crm}
        set_location_settings(max_call_age_minutes=7 * 24 * 60, **values)

    return apply


def conversation_of(contact_id: str) -> AgentConversation | None:
    with db.session() as session:
        return session.scalar(select(AgentConversation).where(AgentConversation.contact_id == contact_id))


def agent_texts(contact_id: str) -> list[AgentOutbound]:
    with db.session() as session:
        return list(session.scalars(select(AgentOutbound).join(
            AgentConversation, AgentConversation.id == AgentOutbound.conversation_id)
            .where(AgentConversation.contact_id == contact_id).order_by(AgentOutbound.id)))


def agent_inbound(contact_id: str) -> list[AgentInbound]:
    with db.session() as session:
        return list(session.scalars(select(AgentInbound).join(
            AgentConversation, AgentConversation.id == AgentInbound.conversation_id)
            .where(AgentConversation.contact_id == contact_id).order_by(AgentInbound.id)))


def thread_bodies(sandbox, contact_id: str) -> list[tuple[str, str]]:
    """(direction, body) of every SMS in the contact's HighLevel thread, oldest first."""
    messages = sandbox.thread(contact_id)["messages"]
    return [(m["direction"], m["body"]) for m in messages if m["messageType"] == "TYPE_SMS"]
