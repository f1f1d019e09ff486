"""The consent `state`: unguessable, single-use and expiring (python-slack-sdk's state store, in our tables).

`issue()` stores a fresh random value; `consume(state)` deletes it and says whether it was there
and still fresh. Deleting is the single-use rule: of two callbacks racing with the same state, only
one DELETE removes the row. Binding the state to the browser (the Flask session) is the view's job.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete

from integration.db import Database, utcnow
from oauth.models import OAuthState

__all__ = ["OAuthStateStore", "states_match"]

DEFAULT_TTL = timedelta(minutes=10)


class OAuthStateStore:
    """Issue and consume consent states.

    Args:
        database: the configured Database.
        ttl: how long a state stays usable.
        clock: returns the current UTC time (tests move it).
    """

    def __init__(self, database: Database, *, ttl: timedelta = DEFAULT_TTL,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.database = database
        self.ttl = ttl
        self.clock = clock

    def issue(self) -> str:
        """Store and return a new state; also sweeps expired ones so the table stays small."""
        state = secrets.token_urlsafe(32)
        now = self.clock()
        with self.database.transaction() as session:
            session.execute(delete(OAuthState).where(OAuthState.expires_at <= now))
            session.add(OAuthState(state=state, created_at=now, expires_at=now + self.ttl))
        return state

    def consume(self, state: str) -> bool:
        """True exactly once for a state we issued that has not expired; False otherwise."""
        if not state or len(state) > 128:
            return False
        with self.database.transaction() as session:
            result = session.execute(
                delete(OAuthState)
                .where(OAuthState.state == state, OAuthState.expires_at > self.clock())
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1


def states_match(sent: str | None, bound: str | None) -> bool:
    """Constant-time check that the state HighLevel sent back is the one bound to this browser."""
    if not sent or not bound:
        return False
    return hmac.compare_digest(sent.encode(), bound.encode())
