"""Events that arrive before their location's install has settled wait for it (issue 13, defect 1).

HighLevel does not order its webhooks. When an agency approves one more sub-account, the Location INSTALL and
the first missed call for it arrive milliseconds apart, and the call can reach a worker before the INSTALL's
token has been minted. Neither can decide it then: the receiver stores it pending (integration.inbox), and
before an event's handler runs the worker asks `install_state` (workers.jobs):

- settled: the location is provisioned (the handler runs; the send re-checks everything), or we know it and
  waiting would not change anything (uninstalled, needs reconnecting): the handler decides, as for any event;
- not settled: we have never seen the location (its row is stored with its first token), or an agency install
  is still minting its token (oauth.provisioning: pending, or failed and to be retried). The event is given
  back without counting an attempt and looked at again after `wait_delay` (2 s, growing to 15 s), until
  `install_wait_seconds` (INSTALL_WAIT_SECONDS, 10 min) after it arrived; then it is ignored with the reason
  `gave_up_reason`.

Those retries are the fallback. When a location's token is stored (the provisioner, the OAuth callback),
`wake_waiting_events` runs its waiting events at once, so the caller is texted seconds after the install
settles. A woken event is its scheduled retry brought forward, not a second job; and even two jobs for one
event cannot both run it, because the claim is a compare-and-set (workers.inbox).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis import Redis
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.registry import ScheduledJobRegistry
from sqlalchemy import bindparam, select, text

from integration.db import Database
from integration.models import Installation, Location, WebhookEvent
from oauth.installation import LOCATION
from oauth.models import WAITING_FOR_INSTALL_SQL, LocationProvisioning, ProvisioningStatus
from oauth.store import ACTIVE, NEEDS_RECONNECT
from workers.queues import SERIALIZER, WEBHOOKS_QUEUE, enqueue_event, event_job_id

__all__ = ["INSTALL_RETRY_DELAYS", "InstallState", "gave_up_reason", "install_state", "wait_delay",
           "waiting_reason", "wake_waiting_events"]

log = logging.getLogger(__name__)

# Seconds before the next look, by the number of waits so far (the last one repeats). Short at first: an
# agency's install is usually minted within a second or two. The wake-up makes the wait end sooner still; these
# only matter when it is lost (Redis unreachable at that moment). Each is shorter than the sweeper's backoff for
# the same attempt count (EVENT_RETRY_DELAYS: 5, 30, ...), so the sweeper never re-runs a waiting event early.
INSTALL_RETRY_DELAYS = (2.0, 3.0, 5.0, 8.0, 12.0, 15.0)
# Provisioning states in which a Location token is still to come (oauth.provisioning retries them).
_MINTING = frozenset({ProvisioningStatus.PENDING, ProvisioningStatus.FAILED})


@dataclass(frozen=True)
class InstallState:
    """What the inbox row and the install tables say about an event's location, read in one statement."""

    location_id: str
    received_at: datetime
    waits: int  # claims of this event that already waited (webhook_events.install_waits)
    location_status: str | None  # locations.status; None: we have never seen the location
    token_status: str | None  # the Location installation's status; None: no token row
    provisioning_status: str | None  # location_provisioning.status; None: not part of an agency install

    @property
    def settled(self) -> bool:
        """True once waiting cannot change the outcome: the handler decides from here."""
        if self.location_status is None:
            return False  # the location row comes with its first token
        if self.token_status in (ACTIVE, NEEDS_RECONNECT):
            return True  # provisioned; or a person must reconnect, which no wait of ours fixes
        # A (re)install minting its token; otherwise the location is known and not live for a reason of its own
        # (uninstalled; the token row gone).
        return self.provisioning_status not in _MINTING

    def describe(self) -> str:
        """Why it is not settled, in a phrase for the inbox row."""
        if self.location_status is None:
            return "the location is not known yet"
        return "its token is still being minted"

    def deadline(self, wait_seconds: float) -> datetime:
        return self.received_at + timedelta(seconds=wait_seconds)


def install_state(database: Database, event_id: int) -> InstallState | None:
    """The event's location and its install state (one round trip); None when the event has no location."""
    with database.autocommit() as connection:
        row = connection.execute(_install_state_query(), {"event_id": event_id}).one_or_none()
    if row is None or row[0] is None:
        return None
    return InstallState(location_id=row[0], received_at=row[1], waits=row[2], location_status=row[3],
                        token_status=row[4], provisioning_status=row[5])


@functools.cache
def _install_state_query():
    # Built once with a bound parameter: asked before every event's handler, and composing it cost more CPU than
    # running it.
    location = WebhookEvent.location_id
    return select(
        location,
        WebhookEvent.received_at,
        WebhookEvent.install_waits,
        select(Location.status).where(Location.id == location).scalar_subquery(),
        select(Installation.status).where(Installation.user_type == LOCATION, Installation.resource_id == location)
        .scalar_subquery(),
        select(LocationProvisioning.status).where(LocationProvisioning.location_id == location).scalar_subquery(),
    ).where(WebhookEvent.id == bindparam("event_id"))


def wait_delay(waits: int) -> float:
    """Seconds until the next look at an event that has waited `waits` times before this one."""
    return INSTALL_RETRY_DELAYS[min(max(waits, 0), len(INSTALL_RETRY_DELAYS) - 1)]


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:g} s"


def waiting_reason(state: InstallState, *, delay: float) -> str:
    return (f"waiting for the install of location {state.location_id} ({state.describe()}); "
            f"looking again in {delay:.0f} s")


def gave_up_reason(location_id: str, wait_seconds: float) -> str:
    return f"no installation for location {location_id} arrived within {_duration(wait_seconds)}"


def wake_waiting_events(database: Database, redis: Redis | None, location_ids: Iterable[str], *,
                        config=None) -> int:
    """Run at once the events waiting for these locations' installs (their tokens were just stored); how many.

    Call it after the commit that stored the token. Best effort, it never raises: an event it misses is looked
    at again on its own schedule (INSTALL_RETRY_DELAYS) and processed then.
    """
    location_ids = sorted({location_id for location_id in location_ids if location_id})
    if not location_ids or redis is None:
        return 0
    try:
        if config is None:
            from workers.config import get_worker_config

            config = get_worker_config()
        with database.session() as session:
            waiting = session.execute(
                select(WebhookEvent.id, WebhookEvent.attempts)
                .where(WebhookEvent.location_id.in_(location_ids), text(WAITING_FOR_INSTALL_SQL))
                .order_by(WebhookEvent.id)  # a location's events in their arrival order
            ).all()
        for event_id, attempts in waiting:
            _run_now(redis, event_id, attempts=attempts, config=config)
    except Exception as exc:
        log.warning("could not wake the events waiting for the install of %s (%s); their retries will run them",
                    ", ".join(location_ids), type(exc).__name__)
        return 0
    if waiting:
        log.info("install of %s settled: %d waiting event(s) run now (%s)", ", ".join(location_ids), len(waiting),
                 ", ".join(str(event_id) for event_id, _ in waiting))
    return len(waiting)


def _run_now(redis: Redis, event_id: int, *, attempts: int, config) -> None:
    """Bring the event's scheduled look forward; enqueue it when it has none (not scheduled yet, or lost)."""
    job_id = event_job_id(event_id, attempts)
    try:
        # ZREM decides: if the scheduler moved the job meanwhile, this raises and the job is queued already.
        ScheduledJobRegistry(WEBHOOKS_QUEUE, connection=redis, serializer=SERIALIZER).requeue(job_id)
        return
    except (InvalidJobOperation, NoSuchJobError):
        pass
    enqueue_event(redis, event_id, attempt=attempts, config=config)
