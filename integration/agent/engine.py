"""One turn of the booking agent: claim the conversation, answer its due texts in order, send what it owes.

`BookingAgent.run(conversation_id)`:

1. Claim the conversation's lease (a conditional UPDATE): one worker at a time, so two texts racing are
   answered one after the other, in the order the caller sent them. A worker that finds it held comes back
   in a few seconds (the holder may already have answered its text; then there is nothing to do).
2. For each due text: check again that the agent may speak (on, with a calendar; no person has texted since
   the call; no STOP), understand it (rules, or the model when one is configured), let the policy decide,
   fetch free slots or book as the decision asks (the slot re-checked right before the POST), and store the
   new state, the text marked done, the texts owed and the team's CRM actions in one transaction.
3. Send the owed texts (integration.agent.outbox): the guards again, quiet hours, the hourly cap, exactly once.

HighLevel failing on the way (free slots 5xx, 429, no token) leaves the text pending and the turn is retried
with backoff; after the last retry the caller is told a person will get back to them and the team gets the
task. A refused booking (a slot taken meanwhile: HighLevel's 400, or a 409) is offered again with new slots;
an ambiguous one (timeout, 5xx) is never retried: the team is asked to check the calendar.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, or_, select, update

from integration.agent import handover, policy
from integration.agent.models import AgentConversation, AgentInbound, AgentOutbound
from integration.agent.outbox import SendPlan, send_pending
from integration.agent.policy import Book, Memory, Offer, Reply
from integration.agent.slots import SlotFinder
from integration.agent.understanding import Heard, When, understand
from integration.crm import outcomes
from integration.crm.models import CrmLead
from integration.crm.takeover import human_handling
from integration.db import Database, utcnow
from integration.ghl.errors import GHLError, GHLRateLimited, GHLValidationError
from integration.logging_setup import redact
from integration.textback.conversation import latest_opt_keyword
from integration.textback.guards import ContactFacts
from integration.textback.models import SendIntent
from integration.textback.opt_out import is_opt_out
from integration.textback.phone import UnusableNumber, parse_caller_number, us_state_code
from integration.textback.quiet_hours import DEFAULT_STATE_RULES, SendingWindows, parse_day_rules
from integration.textback.settings import SettingsError, TextBackSettings
from oauth.errors import TokenUnavailable

__all__ = ["BookingAgent", "Understander", "rules_understander"]

log = logging.getLogger(__name__)

Understander = Callable[[str, datetime, ZoneInfo, Memory], Heard]
_FALLBACK_ZONE = "America/Chicago"


def rules_understander(text: str, now: datetime, zone: ZoneInfo, memory: Memory) -> Heard:
    """The deterministic understanding (integration.agent.understanding): the default, and every fallback."""
    return understand(text, now=now, zone=zone)


@dataclass(frozen=True)
class _Caller:
    """Who we talk to and where they are: the zone slots are offered in, the quiet-hours rules, the numbers."""

    zone: ZoneInfo
    business_zone: str
    plan: SendPlan
    business_name: str


class _Transient(Exception):
    """HighLevel could not answer now: the text stays pending and the turn is retried."""


class BookingAgent:
    """Answers a conversation's due texts and sends what it owes.

    Args:
        database: the configured Database.
        client: the GHLClient (free_slots, create_appointment, send_message, get_contact, conversations).
        gatherer: the text back's FactGatherer (settings and the location's profile).
        schedule: `schedule(conversation_id, when)` runs `run(conversation_id)` again at `when` (an RQ job).
        wake: `wake(action_ids)` runs the CRM actions planned by a turn (the team's task, note, alert).
        understander: text -> Heard; the rules unless a model is configured (integration.agent.llm).
        retry_delays: seconds before each retry of a turn HighLevel could not serve; then a person takes over.
        lease: how long a worker holds a conversation (longer than a turn's API calls with their retries).
        clock: the current UTC time.
    """

    def __init__(self, *, database: Database, client, gatherer, schedule: Callable[[int, datetime], None] | None = None,
                 wake: Callable[[Sequence[int]], None] | None = None, understander: Understander | None = None,
                 retry_delays: Sequence[float] = (5, 30, 120), lease: timedelta = timedelta(seconds=120),
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        self.client = client
        self.gatherer = gatherer
        self.schedule = schedule
        self.wake = wake
        self.understander = understander or rules_understander
        self.retry_delays = tuple(retry_delays)
        self.lease = lease
        self.clock = clock
        self.slots = SlotFinder(client)

    # --- Entry point ---

    def run(self, conversation_id: int) -> str:
        """Answer what is due in one conversation; a readable account of what happened."""
        if not self._claim(conversation_id):
            self._schedule(conversation_id, self.clock() + timedelta(seconds=5))
            return f"agent conversation {conversation_id}: held by another worker; looking again in 5 s"
        done: list[str] = []
        try:
            caller = None
            while True:
                turn = self._next_text(conversation_id)
                if turn is None:
                    break
                conversation, lead, text, settings = turn
                if caller is None:
                    caller = self._caller(conversation, lead, settings)
                done.append(self._answer(conversation, lead, text, settings, caller))
                if done[-1].startswith("retry"):
                    break
            if caller is not None or self._owes(conversation_id):
                done.extend(self._send(conversation_id, caller))
        except SettingsError as exc:
            done.append(f"the settings are invalid ({exc}); nothing done")
        finally:
            self._release(conversation_id)
        return f"agent conversation {conversation_id}: " + ("; ".join(done) or "nothing due")

    # --- Lease ---

    def _claim(self, conversation_id: int) -> bool:
        now = self.clock()
        with self.database.transaction() as session:
            return session.execute(update(AgentConversation).where(
                AgentConversation.id == conversation_id,
                or_(AgentConversation.lease_until.is_(None), AgentConversation.lease_until < now),
            ).values(lease_until=now + self.lease)).rowcount == 1

    def _release(self, conversation_id: int) -> None:
        with self.database.transaction() as session:
            session.execute(update(AgentConversation).where(AgentConversation.id == conversation_id)
                            .values(lease_until=None))

    # --- Reading ---

    def _next_text(self, conversation_id: int):
        """(conversation, lead, the earliest pending text, settings) when one is due now; else None (scheduled)."""
        with self.database.session() as session:
            conversation = session.get(AgentConversation, conversation_id)
            if conversation is None:
                return None
            text = session.scalar(select(AgentInbound).where(
                AgentInbound.conversation_id == conversation_id, AgentInbound.status == AgentInbound.PENDING,
            ).order_by(AgentInbound.occurred_at, AgentInbound.id).limit(1))
            if text is None:
                return None
            if text.due_at > self.clock() + timedelta(seconds=1):
                self._schedule(conversation_id, text.due_at)
                return None
            lead = session.get(CrmLead, conversation.lead_id)
            settings = self.gatherer.settings_for(session, conversation.location_id)[1]
            for row in (conversation, text, lead):
                session.expunge(row)
        return conversation, lead, text, settings

    def _owes(self, conversation_id: int) -> bool:
        with self.database.session() as session:
            return session.scalar(select(AgentOutbound.id).where(
                AgentOutbound.conversation_id == conversation_id,
                AgentOutbound.status.in_([AgentOutbound.PENDING, AgentOutbound.SENDING, AgentOutbound.UNKNOWN]),
            ).limit(1)) is not None

    def _caller(self, conversation: AgentConversation, lead: CrmLead, settings: TextBackSettings) -> _Caller:
        """The caller's zone and numbers. Read once per run (a contact read; a stored zone is reused)."""
        profile = self.gatherer.profile(conversation.location_id)
        business_zone = _valid(settings.timezone) or _valid(profile.timezone) or _FALLBACK_ZONE
        with self.database.session() as session:
            intent = session.scalar(select(SendIntent).where(SendIntent.missed_call_id == lead.missed_call_id))
            from_number = intent.from_number if intent else None
            to_number = (intent.to_number if intent else None) or lead.caller_number
        stored = (conversation.memory or {}).get("_caller") or {}
        if stored.get("zone") and stored.get("quiet_zones"):
            zone, quiet_zones, states = stored["zone"], tuple(stored["quiet_zones"]), stored.get("states") or []
        else:
            contact = ContactFacts.from_api(self.client.get_contact(conversation.location_id, conversation.contact_id))
            number_zones, states = (), []
            try:
                number = parse_caller_number(contact.phone or to_number)
                number_zones = tuple(z for z in number.time_zones if _valid(z))
                states = [number.state] if number.state else []
            except UnusableNumber:
                pass
            if contact.state:
                states.append(us_state_code(contact.state))
            # Slots are offered in the caller's own zone: their contact's, else their number's, else the business's.
            zone = _valid(contact.timezone) or (number_zones[0] if number_zones else business_zone)
            quiet_zones = number_zones or ((zone,) if zone else (business_zone,))
            states = sorted({s for s in states if s})
            with self.database.transaction() as session:
                row = session.get(AgentConversation, conversation.id)
                row.memory = {**(row.memory or {}),
                              "_caller": {"zone": zone, "quiet_zones": list(quiet_zones), "states": states}}
        table = {**DEFAULT_STATE_RULES, **settings.state_rules}
        windows = SendingWindows.build(location_window=settings.quiet_window,
                                       state_rules=[parse_day_rules(table[s]) for s in states if s in table])
        plan = SendPlan(location_id=conversation.location_id, contact_id=conversation.contact_id,
                        from_number=from_number, to_number=to_number, called_at=lead.called_at,
                        zones=tuple(quiet_zones), windows=windows,
                        max_per_hour=settings.agent.max_messages_per_hour)
        return _Caller(zone=ZoneInfo(zone), business_zone=business_zone, plan=plan,
                       business_name=settings.business_name or profile.name or "")

    # --- One text ---

    def _answer(self, conversation: AgentConversation, lead: CrmLead, text: AgentInbound,
                settings: TextBackSettings, caller: _Caller) -> str:
        gate = self._may_not_speak(conversation, lead, settings)
        memory = Memory.from_json(conversation.memory)
        if gate is not None:
            state, reason, hand_over = gate
            reply = Reply(replace(memory, state=state), reason=reason,
                          handover=reason if hand_over and memory.state not in policy.FINAL_STATES else None)
            return self._store(conversation, lead, text, reply, settings=settings)
        heard = self.understander(text.body, self.clock(), caller.zone, memory)
        decision = policy.decide(memory, heard, body=text.body)
        try:
            reply, appointment = self._carry_out(decision, conversation, settings, caller)
        except _Transient as exc:
            return self._retry_or_give_up(conversation, lead, text, memory, str(exc), settings=settings)
        return self._store(conversation, lead, text, reply, settings=settings, appointment=appointment)

    def _may_not_speak(self, conversation: AgentConversation, lead: CrmLead, settings: TextBackSettings):
        """(state, reason, hand over?) when the agent must not answer; None when it may."""
        if conversation.state in policy.FINAL_STATES:
            return conversation.state, f"the conversation is {conversation.state.replace('_', ' ')}", False
        with self.database.session() as session:
            person = human_handling(session, lead.location_id, lead.contact_id, since=lead.called_at)
            latest = latest_opt_keyword(session, lead.location_id, lead.contact_id)
        if person is not None:
            return policy.SILENCED, f"a person (user {person.human_user_id}) is handling the conversation", False
        if latest is not None and is_opt_out(latest.body) and (latest.occurred_at or lead.called_at) >= lead.called_at:
            return policy.STOPPED, "the caller replied STOP", False
        if not settings.agent.active:
            # Turned off mid-dialogue: the caller is not left hanging, the team gets the task.
            return policy.HANDED_OVER, "the booking agent was turned off", True
        return None

    def _carry_out(self, decision, conversation: AgentConversation, settings: TextBackSettings,
                   caller: _Caller) -> tuple[Reply, dict | None]:
        """Do what the decision needs from HighLevel until it is a Reply (a taken slot loops back to offers)."""
        calendar_id = settings.agent.calendar_id
        show_zone = caller.zone.key != caller.business_zone
        for _ in range(3):
            if isinstance(decision, Reply):
                return decision, None
            if isinstance(decision, Offer):
                decision = self._offer(decision, conversation, calendar_id, caller, show_zone)
                continue
            assert isinstance(decision, Book)
            if decision.slot not in decision.memory.offered:
                # The policy only books what it offered; anything else is a bug, and nobody is booked on it.
                log.error("agent conversation %s: asked to book %s, which was not offered", conversation.id,
                          decision.slot)
                return policy.after_booking(decision, "refused"), None
            outcome, appointment = self._book(decision, conversation, calendar_id, caller)
            decision = policy.after_booking(decision, outcome, business=caller.business_name, show_zone=show_zone,
                                            zone=caller.zone)
            if outcome == "booked":
                return decision, appointment
        return policy.after_booking(decision if isinstance(decision, Book) else Book(
            decision.memory, slot=""), "refused"), None

    def _offer(self, decision: Offer, conversation: AgentConversation, calendar_id: str, caller: _Caller,
               show_zone: bool) -> Reply:
        now = self.clock()
        after = datetime.fromisoformat(decision.after) if decision.after else None
        try:
            wanted = self.slots.offer(conversation.location_id, calendar_id, zone=caller.zone, now=now,
                                      when=decision.when, after=after, exclude=decision.exclude)
            fallback: list[datetime] = []
            if not wanted:
                relaxed = _relaxed(decision.when)
                if relaxed is not None:
                    fallback = self.slots.offer(conversation.location_id, calendar_id, zone=caller.zone, now=now,
                                                when=relaxed, after=after, exclude=decision.exclude)
                if not fallback:
                    fallback = self.slots.offer(conversation.location_id, calendar_id, zone=caller.zone, now=now,
                                                after=after, exclude=decision.exclude)
        except (GHLRateLimited, TokenUnavailable) as exc:
            raise _Transient(f"free slots not read now ({_describe(exc)})") from exc
        except GHLError as exc:
            if exc.status is None or exc.status >= 500 or exc.is_ambiguous:
                raise _Transient(f"free slots not read now ({_describe(exc)})") from exc
            raise _Refused(f"HighLevel refused the free-slots request ({exc.message})") from exc
        return policy.present_offers(decision, wanted, fallback=fallback, show_zone=show_zone)

    def _book(self, decision: Book, conversation: AgentConversation, calendar_id: str, caller: _Caller
              ) -> tuple[str, dict | None]:
        """Re-check the slot and book it: ("booked", appointment) | ("taken", None) | ("unknown"/"refused", None)."""
        slot = datetime.fromisoformat(decision.slot)
        try:
            if not self.slots.is_free(conversation.location_id, calendar_id, slot=slot):
                return "taken", None
        except (GHLRateLimited, TokenUnavailable, GHLError) as exc:
            if isinstance(exc, GHLError) and not isinstance(exc, GHLRateLimited) and exc.status is not None \
                    and exc.status < 500 and not exc.is_ambiguous:
                return "refused", None
            raise _Transient(f"the slot could not be re-checked now ({_describe(exc)})") from exc
        now = self.clock()
        with self.database.transaction() as session:
            # Written before the POST: a booking that may have gone through is never attempted twice.
            claimed = session.execute(update(AgentConversation).where(
                AgentConversation.id == conversation.id,
                or_(AgentConversation.booking_status.is_(None), AgentConversation.booking_status == "taken"),
            ).values(booking_status="requesting", booking_start=slot, updated_at=now)).rowcount
        if not claimed:
            return "unknown", None
        memory = decision.memory
        title = f"Service call: {memory.job[:80]}" if memory.job else "Service call (booked by text)"
        try:
            appointment = self.client.create_appointment(conversation.location_id, calendar_id=calendar_id,
                                                         contact_id=conversation.contact_id, start_time=slot,
                                                         title=title)
        except (GHLRateLimited, TokenUnavailable) as exc:
            self._booking_status(conversation.id, None)
            raise _Transient(f"the booking could not be made now ({_describe(exc)})") from exc
        except GHLError as exc:
            if exc.is_ambiguous:
                self._booking_status(conversation.id, "unknown")
                log.warning("agent conversation %s: booking %s may or may not exist (%s)", conversation.id,
                            decision.slot, exc)
                return "unknown", None
            if exc.status == 409 or (isinstance(exc, GHLValidationError) and _says_taken(exc)):
                self._booking_status(conversation.id, "taken")
                return "taken", None
            self._booking_status(conversation.id, "refused")
            log.warning("agent conversation %s: HighLevel refused the booking (%s)", conversation.id, exc)
            return "refused", None
        with self.database.transaction() as session:
            session.execute(update(AgentConversation).where(AgentConversation.id == conversation.id).values(
                booking_status="booked", appointment_id=str(appointment.get("id") or "")[:64], updated_at=now))
        return "booked", appointment

    def _booking_status(self, conversation_id: int, status: str | None) -> None:
        with self.database.transaction() as session:
            session.execute(update(AgentConversation).where(AgentConversation.id == conversation_id)
                            .values(booking_status=status))

    def _retry_or_give_up(self, conversation: AgentConversation, lead: CrmLead, text: AgentInbound, memory: Memory,
                          reason: str, *, settings: TextBackSettings) -> str:
        attempt = text.attempts + 1
        if attempt <= len(self.retry_delays):
            when = self.clock() + timedelta(seconds=self.retry_delays[attempt - 1])
            with self.database.transaction() as session:
                session.execute(update(AgentInbound).where(AgentInbound.id == text.id).values(
                    attempts=attempt, due_at=when, outcome=f"retrying: {reason}"[:2000]))
            self._schedule(conversation.id, when)
            return f"retry in {self.retry_delays[attempt - 1]:.0f} s: {reason}"
        reply = Reply(replace(memory, state=policy.HANDED_OVER), texts=(policy.wording.hand_over("problem"),),
                      handover=f"HighLevel did not answer ({reason})", reason=f"gave up: {reason}")
        return self._store(conversation, lead, text, reply, settings=settings)

    # --- Writing ---

    def _store(self, conversation: AgentConversation, lead: CrmLead, text: AgentInbound, reply: Reply, *,
               settings: TextBackSettings, appointment: dict | None = None) -> str:
        """The turn's results in one transaction: state, the text done, texts owed, the team's actions."""
        now = self.clock()
        planned: list[int] = []
        with self.database.transaction() as session:
            row = session.get(AgentConversation, conversation.id)
            memory_json = {**(row.memory or {}), **reply.memory.to_json()}
            session.execute(update(AgentConversation).where(AgentConversation.id == row.id).values(
                state=reply.memory.state, memory=memory_json, reason=reply.reason or row.reason, updated_at=now))
            session.execute(update(AgentInbound).where(AgentInbound.id == text.id).values(
                status=AgentInbound.DONE if reply.texts or reply.handover else AgentInbound.IGNORED,
                outcome=(reply.reason or "answered")[:2000], processed_at=now))
            for position, body in enumerate(reply.texts):
                session.add(AgentOutbound(conversation_id=row.id, key=f"in:{text.id}:{position}", body=body,
                                          status=AgentOutbound.PENDING, attempts=0, created_at=now))
            session.flush()
            job = reply.memory.job
            if reply.alert and settings.crm.on_call_number:
                planned.append(handover.plan_alert(session, lead, kind=reply.alert, text=text.body, now=now))
            if reply.handover:
                planned.extend(handover.plan_handover(session, row, lead, reason=reply.handover, job=job, now=now))
            if appointment is not None:
                note, _lead = outcomes.record_appointment(session, {
                    "locationId": row.location_id, "appointment": {**appointment, "dateAdded": now.isoformat()}},
                    now=now)
                log.info("agent conversation %s: %s", row.id, note)
                planned.append(handover.plan_note(
                    session, row, purpose="booked", now=now,
                    headline=f"TextBack agent booked {policy.wording.slot_text(_start(appointment, reply))} "
                             f"({appointment.get('id')}) on the calendar.",
                    extra=[f"The job: {job}"] if job else []))
            elif reply.note in ("declined", "wrong number"):
                planned.append(handover.plan_note(session, row, purpose=reply.note.replace(" ", "_"), now=now,
                                                  headline=f"TextBack agent: the caller says {reply.note}."))
        if planned and self.wake is not None:
            try:
                self.wake(planned)
            except Exception as exc:  # pending rows: the CRM sweep runs them
                log.warning("agent conversation %s: CRM actions not queued (%s)", conversation.id,
                            type(exc).__name__)
        return reply.reason or "answered"

    # --- Sending ---

    def _send(self, conversation_id: int, caller: _Caller | None) -> list[str]:
        if caller is None:
            with self.database.session() as session:
                conversation = session.get(AgentConversation, conversation_id)
                lead = session.get(CrmLead, conversation.lead_id)
                settings = self.gatherer.settings_for(session, conversation.location_id)[1]
                session.expunge_all()
            caller = self._caller(conversation, lead, settings)
        outcomes_, blocked, again = send_pending(self.database, self.client, conversation_id, caller.plan,
                                                 now=self.clock)
        if blocked is not None:
            self._stop_for(conversation_id, blocked.state, blocked.reason)
        if again is not None:
            self._schedule(conversation_id, again)
        return outcomes_

    def _stop_for(self, conversation_id: int, state: str, reason: str) -> None:
        now = self.clock()
        planned: list[int] = []
        with self.database.transaction() as session:
            row = session.get(AgentConversation, conversation_id)
            if row.state in policy.FINAL_STATES and state != policy.SILENCED:
                return
            row.state, row.reason = state, reason
            if state == policy.HANDED_OVER:
                lead = session.get(CrmLead, row.lead_id)
                planned = handover.plan_handover(session, row, lead, reason=reason,
                                                 job=Memory.from_json(row.memory).job, now=now)
        if planned and self.wake is not None:
            self.wake(planned)

    def _schedule(self, conversation_id: int, when: datetime) -> None:
        self.schedule_run(conversation_id, when)

    def schedule_run(self, conversation_id: int, when: datetime) -> None:
        """Arrange for `run(conversation_id)` at `when` (on this agent's clock); the sweep repairs a lost one."""
        if self.schedule is None:
            return
        try:
            self.schedule(conversation_id, when)
        except Exception as exc:  # the row is pending: the agent sweep enqueues it when due
            log.warning("agent conversation %s: could not schedule (%s); the sweep will", conversation_id,
                        type(exc).__name__)


class _Refused(_Transient):
    """HighLevel refused a read (4xx): retrying will not help; handled as a give-up after the retries."""


def due_conversations(database: Database, *, now: datetime, slack: timedelta, limit: int = 200) -> list[int]:
    """Conversations with a text due (or a text owed) whose job may have been lost, for the sweep."""
    due_before = now - slack
    with database.session() as session:
        texts = select(AgentInbound.conversation_id).where(AgentInbound.status == AgentInbound.PENDING,
                                                           AgentInbound.due_at <= due_before)
        owed = select(AgentOutbound.conversation_id).where(
            AgentOutbound.status.in_([AgentOutbound.PENDING, AgentOutbound.UNKNOWN, AgentOutbound.SENDING]),
            or_(AgentOutbound.not_before.is_(None), AgentOutbound.not_before <= due_before),
            AgentOutbound.created_at <= due_before)
        free = or_(AgentConversation.lease_until.is_(None), AgentConversation.lease_until < now)
        return list(session.scalars(select(AgentConversation.id).where(
            and_(free, or_(AgentConversation.id.in_(texts), AgentConversation.id.in_(owed))))
            .order_by(AgentConversation.id).limit(limit)))


def _relaxed(when: When | None) -> When | None:
    """A named time that is not free: the same day(s) at any time."""
    if when is None or when.exact is None:
        return None
    return replace(when, exact=None, earliest=None, latest=None)


def _says_taken(exc: GHLValidationError) -> bool:
    text = " ".join(exc.errors).lower()
    return any(word in text for word in ("no longer available", "not available", "already booked", "slot"))


def _start(appointment: dict, reply: Reply) -> datetime:
    """The booked start in the caller's zone (as offered), else as HighLevel wrote it."""
    try:
        return datetime.fromisoformat(reply.memory.booked_start or str(appointment.get("startTime")))
    except ValueError:
        return utcnow()


def _valid(name: str | None) -> str | None:
    if not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def _describe(exc: Exception) -> str:
    return redact(str(exc))[:300]
