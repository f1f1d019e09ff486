"""Exactly-once text back for one missed call.

The flow for a call (DESIGN §4.2, reliability-catalogue §1.11 and §2):

1. Run the guard chain (facts gathered now, not when the webhook arrived): skip with a reason,
   defer to a later minute, or proceed with a template.
2. Reserve: one transaction takes the caller's cooldown, a daily slot, and writes the send intent,
   unique per call. A second worker on the same call loses here and sends nothing.
3. Re-check right before sending what can change in between (installed, enabled, opted out).
4. POST /conversations/messages. Success stores the messageId. A rejection (4xx) is final, with
   HighLevel's reason. A 429 or a missing token means "certainly not sent": retry later. A timeout,
   dropped connection or 5xx means "maybe sent": the intent becomes `unknown`.
5. An `unknown` (or abandoned `sending`) intent is reconciled before anything is sent again: the
   conversation is read and our text looked for. Found: sent. Not found after a grace period: send
   again, the same body, under a fresh lease.
6. A `sending` intent whose worker died (its heartbeat stopped, integration.liveness) is settled at once
   rather than after its lease: the POST it had in flight ended with the process. Our echo or the
   conversation says whether HighLevel took it; if neither does `send_settle` after the dead worker's
   last heartbeat, it is sent again. The wait, if any, happens inside this attempt, so a killed worker's
   text still goes out within seconds (README: what this assumes of HighLevel).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select

from integration.db import Database, utcnow
from integration.ghl.errors import GHLError, GHLRateLimited, GHLUnauthorized
from integration.liveness import current_holder, last_beat
from integration.logging_setup import add_log_context
from integration.textback import intents
from integration.textback.compose import compose_message
from integration.textback.conversation import describe_sent
from integration.textback.facts import FactGatherer, business_day, why_not_live
from integration.textback.guards import Defer, Proceed, Skip, describe_ago, evaluate
from integration.textback.last_check import last_check
from integration.textback.missed_call import Missed, parse_timestamp
from integration.textback.models import Caller, MissedCall, SendIntent
from integration.textback.phone import normalize_number
from integration.textback.settings import SettingsError
from integration.textback.template import segment_info
from oauth.errors import TokenUnavailable

__all__ = ["TextBackSender", "TryAgainLater"]

log = logging.getLogger(__name__)

# HighLevel's clock and ours may differ a little; a text of ours is looked for from this long before the intent.
_CLOCK_SKEW = timedelta(minutes=2)


class TryAgainLater(Exception):
    """Nothing is wrong, but this call cannot finish now; run it again after `delay_seconds`."""

    def __init__(self, reason: str, *, delay_seconds: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = max(0.0, float(delay_seconds))


class TextBackSender:
    """Sends at most one text per missed call, and records why when it sends none.

    Args:
        database: the configured Database.
        client: the GHLClient (send_message, list_messages, search_conversations, and the reads).
        gatherer: builds the guard chain's facts.
        schedule: `schedule(missed_call_id, when)` arranges for `process(missed_call_id)` to run at
            `when` (an RQ scheduled job in production); the row's next_attempt_at is the durable copy.
        lease: how long a send in flight stays owned without renewal; the sending worker renews it every
            third of that for as long as the API call (with the client's own retries) lasts, so a dead
            worker's send is taken over (after reconciling) within about one lease.
        reconcile_grace: after an ambiguous failure, how long our text may take to show up in the
            conversation before it is sent again.
        max_attempts: send attempts per call before giving up (each one reconciled first).
        dead_after: a worker whose heartbeat is this old is dead (integration.liveness); None: leases only.
        send_settle: how long after a dead worker's last heartbeat HighLevel may still show the text it was
            sending; not found by then, it is sent again.
        holder: returns this process's holder name (recorded on the intents it sends).
        clock: returns the current UTC time.
        sleep: waits (tests pass a fake).
    """

    def __init__(self, *, database: Database, client, gatherer: FactGatherer,
                 schedule: Callable[[int, datetime], None] | None = None, lease: timedelta = timedelta(seconds=15),
                 reconcile_grace: timedelta = timedelta(seconds=10), max_attempts: int = 4,
                 dead_after: timedelta | None = None, send_settle: timedelta = timedelta(seconds=3),
                 holder: Callable[[], str | None] = current_holder, clock: Callable[[], datetime] = utcnow,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.database = database
        self.client = client
        self.gatherer = gatherer
        self.schedule = schedule
        self.lease = lease
        self.reconcile_grace = reconcile_grace
        self.max_attempts = max_attempts
        self.dead_after = dead_after
        self.send_settle = send_settle
        self.holder = holder
        self.clock = clock
        self.sleep = sleep

    # --- Entry points ---

    def record(self, call: Missed, *, event_id: int | None) -> tuple[int, bool]:
        """Store a classified missed call (once per call key); (row id, whether this webhook was first)."""
        return intents.record_missed_call(self.database, call, event_id=event_id, now=self.clock())

    def process(self, missed_call_id: int) -> str:
        """Move one missed call as far as it can go now; returns its readable outcome.

        Raises:
            TryAgainLater: another worker holds the send, HighLevel asked us to slow down, or a maybe-
                sent text has not shown up yet. Run again after the delay.
        """
        row, intent = self._load(missed_call_id)
        if row is None:
            return f"missed call {missed_call_id} does not exist"
        add_log_context(missed_call_id=missed_call_id, location_id=row.location_id)
        if row.is_final:
            return row.outcome or row.status
        try:
            if intent is None:
                return self._first_attempt(row)
            return self._resume(row, intent)
        except TokenUnavailable as exc:
            if exc.retryable:
                raise TryAgainLater(f"no HighLevel token right now ({exc})", delay_seconds=30) from exc
            # Uninstalled, or a reconnect is needed: no API call can be made for this sub-account.
            return self._give_up(missed_call_id, f"failed: the HighLevel connection cannot be used ({exc})")

    def _give_up(self, missed_call_id: int, outcome: str) -> str:
        _, intent = self._load(missed_call_id)
        if intent is not None and intent.status == SendIntent.RETRY:
            # Certainly never sent: free the caller's cooldown and the daily slot.
            intents.cancel_intent(self.database, intent.id, call_status=MissedCall.FAILED, outcome=outcome,
                                  error=outcome, now=self.clock())
            return outcome
        if intent is not None and intent.status in (SendIntent.SENDING, SendIntent.UNKNOWN):
            # It may be out there and we can no longer look: say so, and keep the cooldown it holds.
            outcome = f"{outcome}; whether the text went out could not be checked"
        intents.finish_call(self.database, missed_call_id, status=MissedCall.FAILED, outcome=outcome)
        return outcome

    # --- First attempt ---

    def _first_attempt(self, row: MissedCall) -> str:
        decision, gathered = self._decide(row)
        if not isinstance(decision, Proceed):
            return self._record_decision(row, decision)
        now = self.clock()
        settings, profile, contact = gathered.settings, gathered.profile, gathered.facts.contact
        body = compose_message(decision=decision, call=_as_call(row), contact=contact, profile=profile,
                               settings=settings, now=now)
        reservation = intents.reserve_send(
            self.database, row=row, phone=decision.caller.e164, body=body, segments=segment_info(body).segments,
            template_key=decision.template_key, from_number=normalize_number(row.called_number),
            day=business_day(now, decision.business_timezone), cooldown=timedelta(hours=settings.cooldown_hours),
            daily_cap=settings.daily_cap, lease=self.lease, now=now, holder=self.holder(),
        )
        if reservation.lost_to == "intent":
            raise TryAgainLater("another worker is sending this text", delay_seconds=self.lease.total_seconds())
        if reservation.lost_to == "cooldown":
            return self._record_decision(row, Skip(self._cooldown_reason(row, decision.caller.e164)))
        if reservation.lost_to == "daily_cap":
            return self._record_decision(row, Skip(f"the daily limit of {settings.daily_cap} texts is reached"))
        return self._send(reservation.intent_id, business_timezone=decision.business_timezone)

    def _decide(self, row: MissedCall, *, reserved_day=None):
        try:
            gathered = self.gatherer.gather(call=_as_call(row), first_seen_at=row.created_at,
                                            reserved_day=reserved_day)
        except SettingsError as exc:
            return Skip(f"this sub-account's text-back settings are invalid ({exc})"), None
        contact = gathered.facts.contact
        # Kept with the outcome (this row object is detached: nothing is written here).
        row.caller_number = row.caller_number or normalize_number(contact.phone if contact else None)
        row.contact_name = row.contact_name or (contact.name if contact else None)
        return evaluate(gathered.facts, gathered.settings), gathered

    def _record_decision(self, row: MissedCall, decision: Skip | Defer) -> str:
        outcome = decision.describe()
        if isinstance(decision, Skip):
            intents.finish_call(self.database, row.id, status=MissedCall.SKIPPED, outcome=outcome,
                                caller_number=row.caller_number, contact_name=row.contact_name)
            log.info("missed call %s (%s): %s", row.id, row.location_id, outcome)
            return outcome
        intents.defer_call(self.database, row.id, until=decision.until, outcome=outcome,
                           caller_number=row.caller_number, contact_name=row.contact_name)
        self._schedule(row.id, decision.until)
        log.info("missed call %s (%s): %s", row.id, row.location_id, outcome)
        return outcome

    # --- Later attempts ---

    def _resume(self, row: MissedCall, intent: SendIntent) -> str:
        now = self.clock()
        if intent.status == SendIntent.SENT:
            outcome = self._sent_outcome(intent, business_timezone=None)
            intents.mark_sent(self.database, intent.id, message_id=intent.message_id,
                              conversation_id=intent.conversation_id, now=now, outcome=outcome)
            return outcome
        if intent.status == SendIntent.FAILED:
            intents.finish_call(self.database, row.id, status=MissedCall.FAILED,
                                outcome=row.outcome or f"failed: {intent.last_error}")
            return row.outcome or f"failed: {intent.last_error}"
        abandoned_at = None
        if intent.status == SendIntent.SENDING and intent.lease_until and intent.lease_until > now:
            abandoned_at = self._holder_died_at(intent, now)
            if abandoned_at is None:
                wait = (intent.lease_until - now).total_seconds() + 1
                raise TryAgainLater("another worker is sending this text", delay_seconds=wait)

        if intent.status in (SendIntent.UNKNOWN, SendIntent.SENDING):
            # Maybe sent: look before sending again.
            found = self._find_our_text(row, intent)
            if found is not None:
                return self._finish_sent(intent.id, *found)
            if abandoned_at is not None:
                # Its worker died mid-send: give HighLevel's view the rest of `send_settle` to catch up, here and
                # now (a retry would cost seconds more), then look once more.
                settle_left = (abandoned_at + self.send_settle - self.clock()).total_seconds()
                if settle_left > 0:
                    self.sleep(settle_left)
                    found = self._find_our_text(row, self._load_intent(intent.id))
                    if found is not None:
                        return self._finish_sent(intent.id, *found)
                log.warning("send intent %s: its worker %s died mid-send and HighLevel does not have the text; "
                            "sending it again", intent.id, intent.holder)
            else:
                # From the failure, or from the moment a dead worker's lease ran out.
                waited = now - (intent.updated_at if intent.status == SendIntent.UNKNOWN
                                else intent.lease_until or now)
                if waited < self.reconcile_grace:
                    raise TryAgainLater("waiting to see whether HighLevel took the text",
                                        delay_seconds=(self.reconcile_grace - waited).total_seconds())
        if intent.attempts >= self.max_attempts:
            outcome = f"failed: not sent after {intent.attempts} attempts ({intent.last_error})"
            intents.cancel_intent(self.database, intent.id, call_status=MissedCall.FAILED, outcome=outcome,
                                  error=intent.last_error or "gave up", now=now)
            return outcome

        # Not sent: the guards are checked again before sending again.
        decision, gathered = self._decide(row, reserved_day=intent.counted_day)
        if isinstance(decision, Skip):
            outcome = decision.describe()
            intents.cancel_intent(self.database, intent.id, call_status=MissedCall.SKIPPED, outcome=outcome,
                                  error=f"not sent: {decision.reason}", now=now)
            return outcome
        if isinstance(decision, Defer):
            return self._record_decision(row, decision)
        body = None
        if intent.status == SendIntent.RETRY:
            body = compose_message(decision=decision, call=_as_call(row), contact=gathered.facts.contact,
                                   profile=gathered.profile, settings=gathered.settings, now=now)
        if not intents.take_over(self.database, intent.id, expected_status=intent.status, now=self.clock(),
                                 lease=self.lease, body=body, holder=self.holder(),
                                 dead_after=self._dead_after_seconds):
            raise TryAgainLater("another worker took this text over", delay_seconds=self.lease.total_seconds())
        return self._send(intent.id, business_timezone=decision.business_timezone)

    def _holder_died_at(self, intent: SendIntent, now: datetime) -> datetime | None:
        """When the worker sending `intent` was last alive, if it is dead now (no heartbeat for `dead_after`);
        None while it is alive, or when the intent names no holder (then its lease decides)."""
        if self.dead_after is None or not intent.holder:
            return None
        beat = last_beat(self.database, intent.holder)
        if beat is not None and beat >= now - self.dead_after:
            return None
        # No row: it stopped (a clean stop finishes its sends first) or was forgotten long ago.
        return beat or now - self.dead_after

    @property
    def _dead_after_seconds(self) -> float | None:
        return None if self.dead_after is None else self.dead_after.total_seconds()

    # --- Sending ---

    def _send(self, intent_id: int, *, business_timezone: str) -> str:
        now = self.clock()
        intent = self._load_intent(intent_id)
        with self.database.session() as session:
            blocked = self._blocked_now(session, intent)
        if blocked is not None:
            outcome = f"skipped: {blocked} (checked again right before sending)"
            intents.cancel_intent(self.database, intent_id, call_status=MissedCall.SKIPPED, outcome=outcome,
                                  error=f"not sent: {blocked}", now=now)
            return outcome

        try:
            with _LeaseKeeper(self.database, intent_id, lease=self.lease, clock=self.clock):
                answer = self.client.send_message(intent.location_id, contact_id=intent.contact_id,
                                                  message=intent.body, from_number=intent.from_number,
                                                  to_number=intent.to_number)
        except TokenUnavailable as exc:
            if exc.retryable:
                intents.mark_retry(self.database, intent_id, error=str(exc), now=self.clock())
                raise TryAgainLater(f"no HighLevel token right now ({exc})", delay_seconds=30) from exc
            outcome = f"failed: the HighLevel connection cannot be used ({exc})"
            intents.cancel_intent(self.database, intent_id, call_status=MissedCall.FAILED, outcome=outcome,
                                  error=str(exc), now=self.clock())
            return outcome
        except GHLError as exc:
            return self._after_error(intent, exc)
        return self._finish_sent(intent_id, answer.get("messageId"), answer.get("conversationId"),
                                 business_timezone=business_timezone, intent=intent)

    def _after_error(self, intent: SendIntent, exc: GHLError) -> str:
        now = self.clock()
        if exc.is_ambiguous:
            intents.mark_unknown(self.database, intent.id, error=str(exc), now=now)
            log.warning("send intent %s: ambiguous failure (%s); checking the conversation", intent.id, exc)
            try:
                found = self._find_our_text(None, self._load_intent(intent.id))
            except GHLError as check_error:
                raise TryAgainLater(f"HighLevel may not have taken the text ({exc.message}); could not check yet "
                                    f"({check_error.message})", delay_seconds=self.reconcile_grace.total_seconds()
                                    ) from exc
            if found is not None:
                return self._finish_sent(intent.id, *found)
            raise TryAgainLater(f"HighLevel may not have taken the text ({exc.message})",
                                delay_seconds=self.reconcile_grace.total_seconds()) from exc
        if isinstance(exc, GHLRateLimited):
            intents.mark_retry(self.database, intent.id, error=str(exc), now=now)
            raise TryAgainLater("HighLevel rate limit", delay_seconds=exc.retry_after or 10) from exc
        reason = "HighLevel refused our access; reconnect the app" if isinstance(exc, GHLUnauthorized) else \
            f"HighLevel refused the text: {exc.message}"
        outcome = f"failed: {reason}"
        intents.cancel_intent(self.database, intent.id, call_status=MissedCall.FAILED, outcome=outcome,
                              error=str(exc), now=now)
        log.warning("send intent %s: %s", intent.id, outcome)
        return outcome

    def _finish_sent(self, intent_id: int, message_id: str | None, conversation_id: str | None,
                     business_timezone: str | None = None, *, intent: SendIntent | None = None) -> str:
        intent = intent or self._load_intent(intent_id)
        outcome = self._sent_outcome(intent, business_timezone=business_timezone)
        intents.mark_sent(self.database, intent_id, message_id=message_id, conversation_id=conversation_id,
                          now=self.clock(), outcome=outcome)
        log.info("send intent %s: sent (messageId %s)", intent_id, message_id)
        return outcome

    def _sent_outcome(self, intent: SendIntent, *, business_timezone: str | None) -> str:
        return describe_sent(intent, when=intent.sent_at or self.clock(), timezone=business_timezone)

    # --- Checks ---

    def _blocked_now(self, session, intent: SendIntent) -> str | None:
        """What the database says right before the API call: still installed, enabled, not opted out, and no
        person has texted the caller since the call (human takeover, integration.crm.takeover)."""
        check = last_check(session, intent)
        if not check.live:
            return why_not_live(session, intent.location_id)
        if check.enabled is False:
            return "text back is turned off for this sub-account"
        if check.opted_out_at is not None:
            return "the caller opted out of texts"
        if check.person_since_call(intent.created_at):
            return f"a person (user {check.takeover_user}) already texted the caller"
        return None

    def _find_our_text(self, row: MissedCall | None, intent: SendIntent) -> tuple[str, str | None] | None:
        """(messageId, conversationId) of our text if HighLevel has it, else None."""
        if intent.message_id:
            return intent.message_id, intent.conversation_id
        conversation_ids = [c for c in (intent.conversation_id, row.conversation_id if row else None) if c]
        if not conversation_ids and intent.contact_id:
            found = self.client.search_conversations(intent.location_id, contact_id=intent.contact_id, limit=5)
            conversation_ids = [c["id"] for c in found if c.get("id")]
        with self.database.session() as session:
            claimed = set(session.scalars(select(SendIntent.message_id).where(
                SendIntent.contact_id == intent.contact_id, SendIntent.message_id.is_not(None))))
        for conversation_id in dict.fromkeys(conversation_ids):
            for message in self.client.list_messages(intent.location_id, conversation_id, limit=50):
                if message.get("id") not in claimed and _is_our_text(message, intent):
                    return message["id"], conversation_id
        return None

    def _cooldown_reason(self, row: MissedCall, phone: str) -> str:
        with self.database.session() as session:
            caller = session.get(Caller, (row.location_id, phone))
        if caller is None or caller.last_texted_at is None:
            return "texted this caller just now"
        return f"texted this caller {describe_ago(self.clock() - caller.last_texted_at)}"

    # --- Plumbing ---

    def _load(self, missed_call_id: int) -> tuple[MissedCall | None, SendIntent | None]:
        """The call and its send intent (if any) as plain objects of their rows, in one prebuilt statement: read for
        every call, they are never written through the ORM (every change is a conditional statement of intents)."""
        with self.database.autocommit() as connection:
            found = connection.execute(_call_and_intent_query(), {"id": missed_call_id}).first()
        if found is None:
            return None, None
        call_columns, intent_columns = _CALL_AND_INTENT_COLUMNS
        row = MissedCall(**{name: found[i] for i, name in enumerate(call_columns)})
        offset = len(call_columns)
        if found[offset] is None:  # the intent's id: no intent yet
            return row, None
        return row, SendIntent(**{name: found[offset + i] for i, name in enumerate(intent_columns)})

    def _load_intent(self, intent_id: int) -> SendIntent | None:
        with self.database.autocommit() as connection:
            found = connection.execute(_intent_query(), {"id": intent_id}).first()
        return None if found is None else SendIntent(**found._mapping)

    def _schedule(self, missed_call_id: int, when: datetime) -> None:
        if self.schedule is None:
            return
        try:
            self.schedule(missed_call_id, when)
        except Exception as exc:
            # The row is deferred with next_attempt_at: the sweep picks it up when due.
            log.warning("missed call %s: could not schedule (%s); the sweep will", missed_call_id,
                        type(exc).__name__)


class _LeaseKeeper:
    """Renews a send intent's lease from a background thread while the API call is in flight."""

    def __init__(self, database: Database, intent_id: int, *, lease: timedelta, clock: Callable[[], datetime]
                 ) -> None:
        self.database, self.intent_id, self.lease, self.clock = database, intent_id, lease, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-intent-{intent_id}", daemon=True)

    def __enter__(self) -> _LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = self.lease.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                if not intents.renew_lease(self.database, self.intent_id, until=self.clock() + self.lease):
                    return
            except Exception as exc:  # a renewal that fails must not kill the send; the lease just runs out
                log.warning("send intent %s: lease renewal failed (%s)", self.intent_id, type(exc).__name__)


_CALL_AND_INTENT_COLUMNS = (tuple(MissedCall.__table__.c.keys()), tuple(SendIntent.__table__.c.keys()))


@functools.cache
def _call_and_intent_query():
    calls, sends = MissedCall.__table__, SendIntent.__table__
    return (select(*calls.c, *sends.c).select_from(calls)
            .outerjoin(sends, sends.c.call_key == calls.c.call_key)
            .where(calls.c.id == bindparam("id")))


@functools.cache
def _intent_query():
    sends = SendIntent.__table__
    return select(*sends.c).where(sends.c.id == bindparam("id"))


def _as_call(row: MissedCall) -> Missed:
    return Missed(call_key=row.call_key, location_id=row.location_id, contact_id=row.contact_id,
                  conversation_id=row.conversation_id, message_id=row.call_message_id, status=row.call_status,
                  duration=row.call_duration, called_at=row.called_at, user_id=row.user_id,
                  caller_number=row.caller_number, called_number=row.called_number)


def _is_our_text(message: dict, intent: SendIntent) -> bool:
    """An outbound SMS in the conversation with our body, added no earlier than our intent."""
    if str(message.get("direction") or "").lower() != "outbound":
        return False
    kind = str(message.get("messageType") or message.get("type") or "")
    if kind not in {"TYPE_SMS", "SMS", "2"}:
        return False
    if " ".join(str(message.get("body") or "").split()) != " ".join(intent.body.split()):
        return False
    added = parse_timestamp(message.get("dateAdded"))
    return added is None or added >= intent.created_at - _CLOCK_SKEW
