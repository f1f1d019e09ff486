"""The database side of exactly-once sending: every state change of a missed call and its send intent.

Each function is one short transaction, and every transition that two workers could race on is a
conditional write (a unique insert, or an UPDATE ... WHERE <expected state>) whose row count says
who won. That holds on PostgreSQL and on SQLite alike, without relying on isolation levels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from integration import metrics
from integration.db import Database, dialect_insert, dialect_insert_for
from integration.liveness import holder_is_dead
from integration.textback.missed_call import Missed
from integration.textback.models import Caller, DailySendCount, MissedCall, SendIntent

__all__ = [
    "Reservation",
    "cancel_intent",
    "defer_call",
    "dialect_insert",
    "finish_call",
    "insert_ignore",
    "inserted_id",
    "mark_retry",
    "mark_sent",
    "mark_unknown",
    "record_missed_call",
    "renew_lease",
    "reserve_send",
    "take_over",
]


def insert_ignore(session: Session, model: type, **values: object) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING on PostgreSQL or SQLite; True when a row was inserted."""
    # RETURNING, not rowcount: an ORM-session insert does not report a row count on every driver. On the session's
    # connection, after what the session holds is flushed (as session.execute would).
    session.flush()
    connection = session.connection()
    statement = _insert_ignoring(connection.dialect.name, model, tuple(values), returning_id=False)
    return connection.execute(statement, _bound(**values)).first() is not None


def inserted_id(session: Session, model: type, **values: object) -> int | None:
    """insert_ignore for a model with an integer `id`: the new row's id, None when one existed already (so the
    caller reads the existing one only then: one round trip in the usual case)."""
    session.flush()
    connection = session.connection()
    statement = _insert_ignoring(connection.dialect.name, model, tuple(values), returning_id=True)
    return connection.execute(statement, _bound(**values)).scalar()


@functools.cache
def _insert_ignoring(dialect_name: str, model: type, columns: tuple[str, ...], *, returning_id: bool):
    """The INSERT ... ON CONFLICT DO NOTHING of these columns, built once per shape (several run per missed call)."""
    table = model.__table__
    statement = dialect_insert_for(dialect_name)(table).values(**{name: _param(name) for name in columns})
    statement = statement.on_conflict_do_nothing()
    return statement.returning(table.c.id if returning_id else table.primary_key.columns.values()[0])


def record_missed_call(database: Database, call: Missed, *, event_id: int | None, now: datetime
                       ) -> tuple[int, bool]:
    """Store the call once per call key; (row id, True if this webhook created it). `now` is when we heard of it.

    One upsert, one round trip: a later webhook for the same call only counts itself on the row.
    """
    with database.autocommit() as connection:
        row = connection.execute(_record_call_sql(connection.dialect.name), _bound(
            call_key=call.call_key, location_id=call.location_id, contact_id=call.contact_id,
            conversation_id=call.conversation_id, call_message_id=call.message_id,
            caller_number=call.caller_number, called_number=call.called_number,
            call_status=call.status, call_duration=call.duration, called_at=call.called_at, user_id=call.user_id,
            webhook_event_id=event_id, now=now)).one()
    # The first webhook inserted the row with no duplicates; every later one made the count at least 1.
    return row.id, row.duplicate_webhooks == 0


@functools.cache
def _record_call_sql(dialect_name: str):
    calls = MissedCall.__table__
    names = ("call_key", "location_id", "contact_id", "conversation_id", "call_message_id", "caller_number",
             "called_number", "call_status", "call_duration", "called_at", "user_id", "webhook_event_id")
    statement = dialect_insert_for(dialect_name)(calls).values(
        **{name: _param(name) for name in names}, duplicate_webhooks=0, status=MissedCall.PENDING,
        created_at=_param("now"), updated_at=_param("now"))
    statement = statement.on_conflict_do_update(
        index_elements=[calls.c.call_key],
        set_={"duplicate_webhooks": calls.c.duplicate_webhooks + 1, "updated_at": _param("now")})
    return statement.returning(calls.c.id, calls.c.duplicate_webhooks)


def finish_call(database: Database, missed_call_id: int, *, status: str, outcome: str,
                caller_number: str | None = None, contact_name: str | None = None) -> None:
    """Record a final outcome (sent, skipped or failed) with its readable reason (and the caller's number and
    name, once the contact told us: replies and opt-outs are matched by the number, the activity searches both)."""
    assert status in MissedCall.FINAL
    with database.transaction() as session:
        session.execute(update(MissedCall).where(MissedCall.id == missed_call_id).values(
            status=status, outcome=outcome, next_attempt_at=None,
            caller_number=func.coalesce(MissedCall.caller_number, caller_number),
            contact_name=func.coalesce(MissedCall.contact_name, contact_name)))
    metrics.text_finished(status, outcome)


def defer_call(database: Database, missed_call_id: int, *, until: datetime, outcome: str,
               caller_number: str | None = None, contact_name: str | None = None) -> None:
    """Look at the call again at `until`; the reason says why (quiet hours, delay, a retry)."""
    with database.transaction() as session:
        session.execute(update(MissedCall)
                        .where(MissedCall.id == missed_call_id, MissedCall.status.not_in(MissedCall.FINAL))
                        .values(status=MissedCall.DEFERRED, next_attempt_at=until, outcome=outcome,
                                caller_number=func.coalesce(MissedCall.caller_number, caller_number),
                                contact_name=func.coalesce(MissedCall.contact_name, contact_name)))


@dataclass(frozen=True)
class Reservation:
    """The outcome of reserve_send: an intent id, or why the text may not be reserved."""

    intent_id: int | None = None
    lost_to: str | None = None  # "cooldown" | "daily_cap" | "intent" (another worker holds it)


def reserve_send(database: Database, *, row: MissedCall, phone: str, body: str, segments: int, template_key: str,
                 from_number: str | None, day: date, cooldown: timedelta, daily_cap: int, lease: timedelta,
                 now: datetime, holder: str | None = None) -> Reservation:
    """In one transaction: take the caller's cooldown, a daily slot, and write the send intent.

    The cooldown is a compare-and-set on the caller's row, so two different calls from one number
    racing each other get one text; the intent is unique per call, so two workers on one call get
    one intent. Anything lost rolls the whole reservation back. `holder` names the sending worker process
    (integration.liveness).

    Four prebuilt Core statements, once per texted call: the cooldown and the daily slot are each one upsert whose
    DO UPDATE is conditional (a row comes back only when it was taken), where building ORM statements for the
    six steps this used to take cost more CPU than the rest of the send.
    """
    if daily_cap < 1:
        return Reservation(lost_to="daily_cap")
    try:
        with database.transaction() as session:
            connection = session.connection()
            sql = _reservation_sql(connection.dialect.name)
            cooldown_free = connection.execute(sql.take_cooldown, _bound(
                location_id=row.location_id, phone=phone, now=now, call_key=row.call_key, cutoff=now - cooldown))
            if cooldown_free.first() is None:
                raise _Lost("cooldown")
            slot = connection.execute(sql.take_daily_slot, _bound(location_id=row.location_id, day=day,
                                                                  daily_cap=daily_cap))
            if slot.first() is None:
                raise _Lost("daily_cap")
            intent_id = connection.execute(sql.insert_intent, _bound(
                call_key=row.call_key, missed_call_id=row.id, location_id=row.location_id,
                contact_id=row.contact_id, conversation_id=row.conversation_id, to_number=phone,
                from_number=from_number, body=body, segments=segments, template_key=template_key,
                counted_day=day, lease_until=now + lease, holder=holder, now=now,
            )).scalar_one()
            connection.execute(sql.call_sending, _bound(id=row.id, template_key=template_key, phone=phone,
                                                        contact_name=row.contact_name))
            return Reservation(intent_id=intent_id)
    except _Lost as lost:
        return Reservation(lost_to=lost.what)
    except IntegrityError:
        return Reservation(lost_to="intent")


def _param(name: str):
    """A bound parameter of a prebuilt statement; SQLAlchemy reserves the bare column names inside VALUES/SET."""
    return bindparam(f"p_{name}")


def _bound(**values: object) -> dict[str, object]:
    """The values for statements built with _param."""
    return {f"p_{name}": value for name, value in values.items()}


@dataclass(frozen=True)
class _ReservationSql:
    take_cooldown: object
    take_daily_slot: object
    insert_intent: object
    call_sending: object


@functools.cache
def _reservation_sql(dialect_name: str) -> _ReservationSql:
    """reserve_send's statements for one database, built once with bound parameters."""
    insert = dialect_insert_for(dialect_name)
    callers, counts, sends, calls = (Caller.__table__, DailySendCount.__table__, SendIntent.__table__,
                                     MissedCall.__table__)
    p = _param
    # The caller's row is created taken, or taken when its cooldown has passed (or it is this call's own).
    cooldown_over = or_(callers.c.last_texted_at.is_(None), callers.c.last_texted_at <= p("cutoff"),
                        callers.c.last_call_key == p("call_key"))
    take_cooldown = insert(callers).values(
        location_id=p("location_id"), phone=p("phone"), last_texted_at=p("now"), last_call_key=p("call_key"),
        updated_at=p("now"),
    ).on_conflict_do_update(
        index_elements=[callers.c.location_id, callers.c.phone],
        set_={"last_texted_at": p("now"), "last_call_key": p("call_key"), "updated_at": p("now")},
        where=cooldown_over,
    ).returning(callers.c.phone)
    # A day's first text creates its count at 1 (daily_cap >= 1 is checked before); later ones add one under the cap.
    take_daily_slot = insert(counts).values(location_id=p("location_id"), day=p("day"), count=1).on_conflict_do_update(
        index_elements=[counts.c.location_id, counts.c.day], set_={"count": counts.c.count + 1},
        where=counts.c.count < p("daily_cap"),
    ).returning(counts.c.count)
    insert_intent = sends.insert().values(
        call_key=p("call_key"), missed_call_id=p("missed_call_id"), location_id=p("location_id"),
        contact_id=p("contact_id"), conversation_id=p("conversation_id"), to_number=p("to_number"),
        from_number=p("from_number"), body=p("body"), segments=p("segments"), template_key=p("template_key"),
        counted_day=p("counted_day"), status=SendIntent.SENDING, attempts=1, lease_until=p("lease_until"),
        holder=p("holder"), created_at=p("now"), updated_at=p("now"),
    ).returning(sends.c.id)
    call_sending = update(calls).where(calls.c.id == p("id")).values(
        status=MissedCall.SENDING, template_key=p("template_key"), caller_number=p("phone"), next_attempt_at=None,
        outcome="sending", contact_name=func.coalesce(calls.c.contact_name, p("contact_name")))
    return _ReservationSql(take_cooldown, take_daily_slot, insert_intent, call_sending)


class _Lost(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def take_over(database: Database, intent_id: int, *, expected_status: str, now: datetime, lease: timedelta,
              body: str | None = None, holder: str | None = None, dead_after: float | None = None) -> bool:
    """Claim an intent for one more send attempt (as `holder`); False if another worker changed it first.

    A `sending` intent can only be taken once its worker is gone: its lease ran out or, with `dead_after`, its
    holder's heartbeat stopped (integration.liveness). `body` may be replaced only for a `retry` intent: one
    certainly never sent, so no earlier text has to match it.
    """
    conditions = [SendIntent.id == intent_id, SendIntent.status == expected_status]
    if expected_status == SendIntent.SENDING:
        gone = SendIntent.lease_until < now
        if dead_after is not None:
            gone = or_(gone, holder_is_dead(SendIntent.holder, now=now, dead_after=dead_after))
        conditions.append(gone)
    values: dict = {"status": SendIntent.SENDING, "lease_until": now + lease, "attempts": SendIntent.attempts + 1,
                    "holder": holder, "updated_at": now}
    if body is not None and expected_status == SendIntent.RETRY:
        values["body"] = body
    with database.transaction() as session:
        won = session.execute(update(SendIntent).where(*conditions).values(**values)).rowcount == 1
        if won:
            missed_call_id = session.scalar(select(SendIntent.missed_call_id).where(SendIntent.id == intent_id))
            session.execute(update(MissedCall).where(MissedCall.id == missed_call_id)
                            .values(status=MissedCall.SENDING, next_attempt_at=None))
    return won


def mark_sent(database: Database, intent_id: int, *, message_id: str | None, conversation_id: str | None,
              now: datetime, outcome: str) -> None:
    """HighLevel has the text: store its messageId and close the call as sent (Core statements: once per text)."""
    with database.transaction() as session:
        connection = session.connection()
        sql = _sent_sql()
        missed_call_id, sent_at = connection.execute(sql.intent, _bound(
            id=intent_id, message_id=message_id, conversation_id=conversation_id, now=now)).one()
        called_at = connection.execute(sql.call, _bound(id=missed_call_id, outcome=outcome, now=now,
                                                        conversation_id=conversation_id)).scalar()
    if sent_at == now:  # first marked sent now, not marked again
        metrics.text_sent(now=now, called_at=called_at)


@dataclass(frozen=True)
class _SentSql:
    intent: object
    call: object


@functools.cache
def _sent_sql() -> _SentSql:
    sent, calls = SendIntent.__table__.c, MissedCall.__table__
    intent = (update(SendIntent.__table__).where(sent.id == _param("id"))
              .values(status=SendIntent.SENT, message_id=func.coalesce(sent.message_id, _param("message_id")),
                      conversation_id=func.coalesce(_param("conversation_id"), sent.conversation_id),
                      sent_at=func.coalesce(sent.sent_at, _param("now")), lease_until=None, last_error=None,
                      updated_at=_param("now"))
              .returning(sent.missed_call_id, sent.sent_at))
    call = update(calls).where(calls.c.id == _param("id")).values(
        status=MissedCall.SENT, outcome=_param("outcome"), next_attempt_at=None, updated_at=_param("now"),
        conversation_id=func.coalesce(calls.c.conversation_id, _param("conversation_id"))
    ).returning(func.coalesce(calls.c.called_at, calls.c.created_at))
    return _SentSql(intent, call)


def renew_lease(database: Database, intent_id: int, *, until: datetime) -> bool:
    """Keep owning a send in flight; False once the intent is no longer ours to renew."""
    with database.transaction() as session:
        return session.execute(update(SendIntent)
                               .where(SendIntent.id == intent_id, SendIntent.status == SendIntent.SENDING)
                               .values(lease_until=until)).rowcount == 1


def mark_unknown(database: Database, intent_id: int, *, error: str, now: datetime) -> None:
    """An ambiguous failure: the text may be out. Nobody may send again before checking the conversation."""
    with database.transaction() as session:
        session.execute(update(SendIntent)
                        .where(SendIntent.id == intent_id, SendIntent.status == SendIntent.SENDING)
                        .values(status=SendIntent.UNKNOWN, last_error=error, lease_until=None, updated_at=now))


def mark_retry(database: Database, intent_id: int, *, error: str, now: datetime) -> None:
    """Certainly not sent (rate limited, no token right now): the next attempt may send without checking."""
    with database.transaction() as session:
        session.execute(update(SendIntent)
                        .where(SendIntent.id == intent_id, SendIntent.status == SendIntent.SENDING)
                        .values(status=SendIntent.RETRY, last_error=error, lease_until=None, updated_at=now))


def cancel_intent(database: Database, intent_id: int, *, call_status: str, outcome: str, error: str,
                  now: datetime) -> None:
    """The text was not sent and never will be: free the caller's cooldown and the daily slot it held."""
    with database.transaction() as session:
        intent = session.get(SendIntent, intent_id)
        intent.status = SendIntent.FAILED
        intent.last_error = error
        intent.lease_until = None
        intent.updated_at = now
        # The caller's cooldown falls back to their previous text that may be out there, if any.
        previous = session.scalar(select(func.max(SendIntent.created_at)).where(
            SendIntent.location_id == intent.location_id, SendIntent.to_number == intent.to_number,
            SendIntent.id != intent.id, SendIntent.status.in_(SendIntent.LIVE)))
        session.execute(update(Caller)
                        .where(Caller.location_id == intent.location_id, Caller.phone == intent.to_number,
                               Caller.last_call_key == intent.call_key)
                        .values(last_texted_at=previous, last_call_key=None, updated_at=now))
        session.execute(update(DailySendCount)
                        .where(DailySendCount.location_id == intent.location_id,
                               DailySendCount.day == intent.counted_day, DailySendCount.count > 0)
                        .values(count=DailySendCount.count - 1))
        session.execute(update(MissedCall).where(MissedCall.id == intent.missed_call_id)
                        .values(status=call_status, outcome=outcome, next_attempt_at=None))
    metrics.text_finished(call_status, outcome)
