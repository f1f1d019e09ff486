"""The database side of the CRM outbox: plan an action once, claim it for one worker, finish or retry it.

Each function is one short transaction, and every transition two workers could race on is a
conditional write (a unique insert, or an UPDATE ... WHERE <expected state>) whose row count says
who won, as in integration.textback.intents. That holds on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import Session

from integration.crm.models import CrmAction
from integration.db import Database
from integration.textback.intents import inserted_id

__all__ = ["claim", "due_actions", "finish", "plan", "postpone", "wake_lead_actions"]

# A job may run a little before its time by a scheduler's clock; that is still due.
_EARLY = timedelta(seconds=1)


def plan(session: Session, *, key: str, kind: str, location_id: str, contact_id: str | None,
         lead_id: int | None = None, params: dict | None = None, now: datetime) -> int:
    """Write the action unless one with `key` exists; returns its id either way (planning twice is a no-op)."""
    new_id = inserted_id(session, CrmAction, key=key, kind=kind, location_id=location_id, contact_id=contact_id,
                         lead_id=lead_id, params=params or {}, status=CrmAction.PENDING, attempts=0,
                         maybe_done=False, created_at=now, updated_at=now)
    return new_id if new_id is not None else session.scalar(select(CrmAction.id).where(CrmAction.key == key))


def claim(database: Database, action_id: int, *, now: datetime, lease: timedelta) -> CrmAction | None:
    """Take a due action for one attempt; None when it is final, not due, or held by a live worker.

    An action found `running` with its lease run out was abandoned by a dead worker: its request may
    have reached HighLevel, so it is taken over with `maybe_done` set.
    """
    with database.autocommit() as connection:
        # One statement, committed by itself; the row comes back with the UPDATE (RETURNING).
        row = connection.execute(_claim_sql(), {"p_id": action_id, "p_now": now, "p_due_by": now + _EARLY,
                                                "p_lease_until": now + lease}).one_or_none()
    return None if row is None else CrmAction(**row._mapping)


def finish(database: Database, action_id: int, *, status: str, outcome: str, now: datetime,
           result_id: str | None = None, error: str | None = None) -> bool:
    """Record a final outcome with its readable reason; False if this worker no longer held the action.

    `last_error` keeps the last failure of an action that then succeeded: what it went through.
    """
    assert status in CrmAction.FINAL
    with database.autocommit() as connection:
        return connection.execute(_finish_sql(), {
            "p_id": action_id, "p_status": status, "p_outcome": outcome[:2000], "p_result_id": result_id,
            "p_error": error[:2000] if error else None, "p_now": now}).rowcount == 1


# claim and finish run for every CRM action (three per missed call): built once, run on a connection.


@functools.cache
def _claim_sql():
    actions = CrmAction.__table__
    c = actions.c
    claimable = or_(
        and_(c.status == CrmAction.PENDING,
             or_(c.next_attempt_at.is_(None), c.next_attempt_at <= bindparam("p_due_by"))),
        and_(c.status == CrmAction.RUNNING, c.lease_until < bindparam("p_now")),
    )
    return update(actions).where(c.id == bindparam("p_id"), claimable).values(
        maybe_done=case((c.status == CrmAction.RUNNING, True), else_=c.maybe_done),
        status=CrmAction.RUNNING, lease_until=bindparam("p_lease_until"), attempts=c.attempts + 1,
        updated_at=bindparam("p_now"),
    ).returning(*c)


@functools.cache
def _finish_sql():
    actions = CrmAction.__table__
    c = actions.c
    return update(actions).where(c.id == bindparam("p_id"), c.status == CrmAction.RUNNING).values(
        status=bindparam("p_status"), outcome=bindparam("p_outcome"), result_id=bindparam("p_result_id"),
        last_error=func.coalesce(bindparam("p_error", type_=c.last_error.type), c.last_error), lease_until=None,
        next_attempt_at=None, finished_at=bindparam("p_now"), updated_at=bindparam("p_now"),
    )


def postpone(database: Database, action_id: int, *, until: datetime, reason: str, now: datetime,
             maybe_done: bool = False, counts: bool = True) -> bool:
    """Back to pending until `until` (a retry after an error, or waiting for another action).

    `counts=False` gives the attempt back: waiting for the opportunity is not a failure of this action.
    """
    values: dict = {"status": CrmAction.PENDING, "next_attempt_at": until, "lease_until": None,
                    "outcome": f"retrying: {reason}"[:2000] if counts else f"waiting: {reason}"[:2000],
                    "updated_at": now}
    if counts:
        values["last_error"] = reason[:2000]
    else:
        values["attempts"] = CrmAction.attempts - 1
    if maybe_done:
        values["maybe_done"] = True
    with database.transaction() as session:
        return session.execute(
            update(CrmAction).where(CrmAction.id == action_id, CrmAction.status == CrmAction.RUNNING).values(**values)
        ).rowcount == 1


def wake_lead_actions(session: Session, lead_id: int, *, kinds: tuple[str, ...], now: datetime) -> list[int]:
    """Make the lead's pending actions of these kinds due now (they were waiting for this one); their ids."""
    ids = list(session.scalars(select(CrmAction.id).where(
        CrmAction.lead_id == lead_id, CrmAction.kind.in_(kinds), CrmAction.status == CrmAction.PENDING)))
    if ids:
        session.execute(update(CrmAction).where(CrmAction.id.in_(ids), CrmAction.status == CrmAction.PENDING)
                        .values(next_attempt_at=now, updated_at=now))
    return ids


def due_actions(database: Database, *, now: datetime, slack: timedelta, limit: int) -> list[tuple[int, datetime]]:
    """(id, due time) of actions whose job may have been lost: pending and due for `slack`, or abandoned."""
    due_before = now - slack
    with database.session() as session:
        rows = session.execute(
            select(CrmAction.id, CrmAction.next_attempt_at, CrmAction.created_at, CrmAction.lease_until).where(or_(
                and_(CrmAction.status == CrmAction.PENDING,
                     or_(and_(CrmAction.next_attempt_at.is_(None), CrmAction.created_at <= due_before),
                         CrmAction.next_attempt_at <= due_before)),
                and_(CrmAction.status == CrmAction.RUNNING, CrmAction.lease_until < now),
            )).order_by(CrmAction.id).limit(limit)
        ).all()
    return [(row.id, row.lease_until if row.lease_until is not None else row.next_attempt_at or row.created_at)
            for row in rows]
