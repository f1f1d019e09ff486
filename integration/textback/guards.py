"""The guard chain: should this missed call be texted now, later, or not at all, and with which template.

Pure: it reads a `CallFacts` (gathered by integration.textback.facts) and returns Proceed, Skip or
Defer, each with a reason a contractor can read. The sender runs it when the job starts and again
right before the API call. Checks run cheapest and most final first; quiet hours last, because a
text that must not go at all should say so rather than wait until morning to say so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from integration.textback.business_hours import AFTER_HOURS, BUSINESS_HOURS, HOLIDAY, BusinessHours
from integration.textback.missed_call import Missed
from integration.textback.phone import CallerNumber, UnusableNumber, parse_caller_number, us_state_code
from integration.textback.quiet_hours import (
    DEFAULT_STATE_RULES,
    SendingWindows,
    next_allowed_time,
    parse_day_rules,
)
from integration.textback.settings import EXISTING_CUSTOMER, TextBackSettings

__all__ = [
    "CallFacts",
    "ContactFacts",
    "Defer",
    "Outcome",
    "Proceed",
    "Skip",
    "describe_ago",
    "evaluate",
]

# When nothing says where the caller or the business is: wait until it is allowed on both US coasts.
FALLBACK_ZONES = ("America/New_York", "America/Los_Angeles")
NANP_COUNTRIES = ("US", "CA")
_PERIOD_LABELS = {BUSINESS_HOURS: "business-hours", AFTER_HOURS: "after-hours", HOLIDAY: "holiday",
                  EXISTING_CUSTOMER: "existing-customer"}


@dataclass(frozen=True)
class ContactFacts:
    """What HighLevel says about the caller's contact record."""

    contact_id: str
    phone: str | None = None
    first_name: str | None = None
    # The whole name ("Dana Whitfield"): kept with the call's outcome so the activity can be searched by it.
    name: str | None = None
    dnd: bool = False
    sms_dnd_status: str | None = None
    tags: frozenset[str] = frozenset()
    contact_type: str | None = None
    timezone: str | None = None
    state: str | None = None
    assigned_to: str | None = None
    open_opportunity: str | None = None

    @classmethod
    def from_api(cls, contact: Mapping, *, open_opportunity: str | None = None) -> ContactFacts:
        """Build from a GET /contacts/{id} contact object (tolerating missing fields)."""
        dnd_settings = contact.get("dndSettings") if isinstance(contact.get("dndSettings"), Mapping) else {}
        sms = dnd_settings.get("SMS") if isinstance(dnd_settings.get("SMS"), Mapping) else {}
        tags = contact.get("tags") if isinstance(contact.get("tags"), list) else []
        return cls(
            contact_id=str(contact.get("id") or ""),
            phone=contact.get("phone") or None,
            first_name=contact.get("firstName") or None,
            name=_contact_name(contact),
            dnd=bool(contact.get("dnd")),
            sms_dnd_status=(str(sms.get("status")).lower() if sms.get("status") else None),
            tags=frozenset(str(t).strip().lower() for t in tags if str(t).strip()),
            contact_type=(str(contact.get("type")).lower() if contact.get("type") else None),
            timezone=contact.get("timezone") or None,
            state=(str(contact.get("state")).strip() or None) if contact.get("state") else None,
            assigned_to=contact.get("assignedTo") or None,
            open_opportunity=open_opportunity,
        )

    @property
    def sms_blocked(self) -> bool:
        """Do Not Disturb on for every channel, or for SMS (active or permanent): no text may go."""
        return self.dnd or self.sms_dnd_status in {"active", "permanent"}


@dataclass(frozen=True)
class CallFacts:
    """Everything the chain looks at, gathered once per evaluation."""

    now: datetime
    call: Missed
    first_seen_at: datetime
    location_live: bool
    location_enabled: bool
    # Why the location is not live, in words (set when location_live is False).
    location_problem: str | None = None
    location_timezone: str | None = None
    location_country: str | None = None
    own_numbers: frozenset[str] = frozenset()
    staff_numbers: Mapping[str, str] = field(default_factory=dict)
    contact: ContactFacts | None = None
    opted_out_at: datetime | None = None
    last_texted_at: datetime | None = None
    sent_today: int = 0


@dataclass(frozen=True)
class Proceed:
    """Text now, with this template, to this number."""

    template_key: str
    caller: CallerNumber
    caller_zones: tuple[str, ...]
    business_timezone: str

    def describe(self) -> str:
        return f"sending the {_PERIOD_LABELS[self.template_key]} message"


@dataclass(frozen=True)
class Skip:
    """Never text this call; `reason` says why."""

    reason: str

    def describe(self) -> str:
        return f"skipped: {self.reason}"


@dataclass(frozen=True)
class Defer:
    """Not yet: evaluate again at `until`."""

    until: datetime
    reason: str

    def describe(self) -> str:
        return f"deferred to {self.reason}"


Outcome = Proceed | Skip | Defer


def _contact_name(contact: Mapping) -> str | None:
    name = str(contact.get("name") or contact.get("contactName") or "").strip() or " ".join(
        str(contact.get(part) or "").strip() for part in ("firstName", "lastName")).strip()
    return name[:255] or None


def evaluate(facts: CallFacts, settings: TextBackSettings) -> Outcome:
    """Run the guard chain for one missed call."""
    now = facts.now.astimezone(UTC)
    if not facts.location_live:
        return Skip(facts.location_problem or "the app is not installed on this sub-account")
    if not facts.location_enabled:
        return Skip("text back is turned off for this sub-account")

    called_at = facts.call.called_at or facts.first_seen_at
    # How late the webhook reached us (HighLevel retries for about 70 minutes), not how long our own
    # deferral lasted: a call deferred overnight by quiet hours is still texted in the morning.
    late_by = facts.first_seen_at - called_at
    if late_by > timedelta(minutes=settings.max_call_age_minutes):
        return Skip(f"the call was {describe_ago(late_by)} when it reached us, too long ago to text back")

    if facts.contact is None:
        # Texts go through the contact's HighLevel conversation; without a contact there is none.
        return Skip("the call has no contact record in HighLevel")
    raw_number = facts.contact.phone or facts.call.caller_number
    try:
        caller = parse_caller_number(raw_number, default_region=facts.location_country or "US")
    except UnusableNumber as exc:
        return Skip(exc.reason)

    allowed = _allowed_countries(settings, facts.location_country)
    if caller.region not in allowed:
        return Skip(f"{caller.e164} is an international number (texts go to {', '.join(allowed)} numbers)")
    if caller.e164 in facts.own_numbers or caller.e164 in settings.business_numbers:
        return Skip("the caller is one of the business's own numbers")
    if caller.e164 in facts.staff_numbers:
        return Skip(f"the caller is a team member ({facts.staff_numbers[caller.e164]})")
    if caller.e164 in settings.excluded_numbers:
        return Skip("the caller is on the excluded numbers list")

    contact = facts.contact
    if contact is not None and contact.dnd:
        return Skip("the caller has Do Not Disturb on")
    if contact is not None and contact.sms_dnd_status in {"active", "permanent"}:
        return Skip("the caller has Do Not Disturb on for SMS")
    if facts.opted_out_at is not None:
        return Skip(f"the caller opted out of texts {describe_ago(now - facts.opted_out_at)}")

    if facts.last_texted_at is not None and settings.cooldown_hours > 0:
        since = now - facts.last_texted_at
        if since < timedelta(hours=settings.cooldown_hours):
            return Skip(f"texted this caller {describe_ago(since)}")
    if facts.sent_today >= settings.daily_cap:
        return Skip(f"the daily limit of {settings.daily_cap} texts is reached")

    business_tz = _business_timezone(settings, facts.location_timezone)
    template_key = _pick_template(facts, settings, business_tz, now)
    if isinstance(template_key, Skip):
        return template_key
    if not settings.templates.get(template_key, "").strip():
        return Skip(f"no {_PERIOD_LABELS[template_key]} message is set")

    zones = _caller_zones(caller, contact, business_tz)
    # NOTE: the call's timestamp comes from HighLevel's clock, which may run a little ahead of ours. With
    # no configured delay that skew must not become a deferral (a scheduler round trip of a second or more).
    earliest = max(now, called_at + timedelta(seconds=settings.delay_seconds)) if settings.delay_seconds else now
    windows = SendingWindows.build(location_window=settings.quiet_window,
                                   state_rules=_state_rules(settings, caller, contact))
    send_at = next_allowed_time(earliest, zones=zones, windows=windows)
    if send_at > now:
        if send_at > earliest:
            return Defer(send_at, f"{_local_clock(send_at, zones[0], now)} caller time (quiet hours)")
        return Defer(send_at, f"{_local_clock(send_at, business_tz, now)} ({settings.delay_seconds} s delay)")
    return Proceed(template_key=template_key, caller=caller, caller_zones=zones, business_timezone=business_tz)


def describe_ago(delta: timedelta) -> str:
    """ "just now", "5 min ago", "2 h ago", "3 days ago"."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _allowed_countries(settings: TextBackSettings, location_country: str | None) -> tuple[str, ...]:
    if settings.allowed_countries:
        return settings.allowed_countries
    country = (location_country or "US").upper()
    return NANP_COUNTRIES if country in NANP_COUNTRIES else (country,)


def _pick_template(facts: CallFacts, settings: TextBackSettings, business_tz: str, now: datetime) -> str | Skip:
    existing = _existing_customer_reason(facts.contact, settings)
    if existing is not None and settings.existing_action != "same":
        if settings.existing_action == "skip":
            return Skip(f"existing customer ({existing})")
        return EXISTING_CUSTOMER
    hours = BusinessHours.from_settings(timezone=business_tz, weekly=settings.weekly_hours,
                                        holidays=settings.holidays)
    return hours.period(now)


def _existing_customer_reason(contact: ContactFacts | None, settings: TextBackSettings) -> str | None:
    if contact is None:
        return None
    matching_tags = sorted(contact.tags & settings.existing_tags)
    if matching_tags:
        return f"tag '{matching_tags[0]}'"
    if contact.contact_type and contact.contact_type in settings.existing_contact_types:
        return f"contact type '{contact.contact_type}'"
    if settings.existing_open_opportunity and contact.open_opportunity:
        return f"open opportunity '{contact.open_opportunity}'"
    return None


def _business_timezone(settings: TextBackSettings, location_timezone: str | None) -> str:
    for candidate in (settings.timezone, location_timezone):
        if candidate and _valid_zone(candidate):
            return candidate
    return FALLBACK_ZONES[0]


def _caller_zones(caller: CallerNumber, contact: ContactFacts | None, business_tz: str) -> tuple[str, ...]:
    """From the number; else the contact's own zone; else the business's (issue 4 item 3)."""
    zones = tuple(z for z in caller.time_zones if _valid_zone(z))
    if zones:
        return zones
    if contact is not None and contact.timezone and _valid_zone(contact.timezone):
        return (contact.timezone,)
    return (business_tz,)


def _state_rules(settings: TextBackSettings, caller: CallerNumber, contact: ContactFacts | None) -> list[dict]:
    """Rules for the number's state and the contact's address state (both apply: most restrictive)."""
    states = {caller.state}
    if contact is not None and contact.state and caller.region in {"US", "PR"}:
        states.add(us_state_code(contact.state))
    table = {**DEFAULT_STATE_RULES, **settings.state_rules}
    return [parse_day_rules(table[s]) for s in sorted(filter(None, states)) if s in table]


def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _local_clock(instant: datetime, zone: str, now: datetime) -> str:
    local, today = instant.astimezone(ZoneInfo(zone)), now.astimezone(ZoneInfo(zone)).date()
    if local.date() == today:
        return f"{local:%H:%M}"
    if (local.date() - today).days == 1:
        return f"{local:%H:%M} tomorrow"
    return f"{local:%a %H:%M}"

