"""What an action's executor gets and what it may answer: the contract between the runner and the executors.

An executor is `execute(ctx: CrmContext, action: CrmAction) -> Done`. It reads fresh state, makes its
HighLevel calls and returns what it did. It raises Skipped when there is nothing to do (with the
reason), Failed when retrying cannot help, Waiting when another action must finish first, and lets
GHLError / TokenUnavailable through: the runner decides between a retry with backoff and a failure.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select

from integration.crm.models import CrmAction, CrmLead
from integration.crm.pipelines import PipelineDirectory
from integration.db import Database
from integration.textback.facts import FactGatherer
from integration.textback.profiles import LocationProfile
from integration.textback.settings import TextBackSettings

__all__ = ["CrmContext", "Done", "Failed", "Skipped", "Waiting"]


@dataclass(frozen=True)
class Done:
    """The action took effect: a readable outcome and what HighLevel created or found (if anything)."""

    outcome: str
    result_id: str | None = None
    # Actions that were waiting for this one, now due: the runner enqueues them.
    wake: tuple[int, ...] = ()


class Skipped(Exception):
    """Nothing to do (the reason is recorded): e.g. no replied stage configured, a person is handling it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Failed(Exception):
    """Retrying cannot help (e.g. the chosen pipeline is gone); recorded as failed with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Waiting(Exception):
    """Another action must finish first (the opportunity before its stage moves); not counted as a failure."""

    def __init__(self, reason: str, *, delay_seconds: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = delay_seconds


@dataclass(frozen=True)
class CrmContext:
    """What executors share: the database, the API client, the location's settings, profile and pipelines, the clock."""

    database: Database
    client: object
    gatherer: FactGatherer
    clock: Callable[[], datetime]

    def settings(self, location_id: str) -> TextBackSettings:
        """The location's effective settings (raises SettingsError when they do not validate)."""
        with self.database.session() as session:
            return self.gatherer.settings_for(session, location_id)[1]

    def profile(self, location_id: str) -> LocationProfile:
        """Users, admins and time zone of the location (the send's cached profile, integration.textback.profiles)."""
        return self.gatherer.profile(location_id)

    def pipelines(self, location_id: str) -> PipelineDirectory:
        """The location's pipelines and stages: cached for a few minutes, else asked of HighLevel now (after
        the text: the send never waits on them)."""
        return self.gatherer.pipelines.get(location_id)

    def timezone(self, location_id: str) -> str | None:
        """The business's time zone: the settings' own, else HighLevel's for the location."""
        return self.settings(location_id).timezone or self.profile(location_id).timezone

    def lead(self, lead_id: int | None) -> CrmLead:
        """The action's lead, fresh from the database (detached)."""
        row = None
        if lead_id is not None:
            with self.database.autocommit() as connection:
                row = connection.execute(_lead_query(), {"id": lead_id}).first()
        if row is None:
            raise Skipped(f"lead {lead_id} does not exist")
        return CrmLead(**row._mapping)

    def action_of(self, lead_id: int, kind: str) -> CrmAction | None:
        """Another action of the same lead (the opportunity, for a stage move)."""
        with self.database.session() as session:
            action = session.scalar(select(CrmAction).where(CrmAction.lead_id == lead_id, CrmAction.kind == kind)
                                    .order_by(CrmAction.id))
            if action is not None:
                session.expunge(action)
            return action


@functools.cache
def _lead_query():
    # Built once, read on a connection: two of a lead's three actions read it.
    leads = CrmLead.__table__
    return select(*leads.c).where(leads.c.id == bindparam("id"))
