"""One activity row in plain words: what kind of call it was, what we did about it and why, and how the lead went.

The pipeline already records the why where it decides (MissedCall.outcome: "texted at 14:02 (...)", "skipped:
texted this caller 2 h ago", "deferred to 08:00 tomorrow caller time (quiet hours)", "failed: HighLevel refused
the text: ..."; an ignored call's inbox reason: "not a missed call: answered for 180 s"). This module only turns
those into a badge and a sentence; it decides nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from integration.textback.missed_call import SHORT_ANSWER, normalize_status, parse_timestamp

__all__ = ["MISSED_COLUMNS", "ActivityRow", "describe_duration", "ignored_row", "missed_cells", "missed_row"]

# MissedCall.status -> the badge the contractor sees.
_BADGES = {"sent": "Texted", "deferred": "Deferred", "skipped": "Skipped", "failed": "Failed",
           "pending": "In progress", "sending": "In progress"}
_IGNORED_PREFIX = "not a missed call: "
_REPLY_EXCERPT = 140


@dataclass(frozen=True)
class ActivityRow:
    """What the page and the CSV show for one call."""

    kind: int  # 0: missed call, 1: ignored call (the cursor's kind)
    id: int
    at: datetime  # when we heard of it (the sort key)
    called_at: datetime
    caller_name: str | None
    caller_number: str | None
    call: str  # "no answer", "voicemail", "answered for 4 s (counted as missed)"
    badge: str  # Texted | Deferred | Skipped | Failed | In progress | Not missed
    outcome: str  # the why, in a sentence
    reply: str | None = None
    replied_at: datetime | None = None
    stage: str | None = None  # texted | replied | booked | won | lost | abandoned

    @property
    def badge_class(self) -> str:
        return {"Texted": "ok", "Failed": "bad", "Skipped": "off", "Not missed": "off"}.get(self.badge, "")

    def local(self, instant: datetime | None, zone: ZoneInfo, *, today: datetime) -> str:
        """ "14:02" today, "Tue 3 Mar, 14:02" this year, "3 Mar 2025, 14:02" before."""
        if instant is None:
            return ""
        local, now = instant.astimezone(zone), today.astimezone(zone)
        if local.date() == now.date():
            return f"Today, {local:%H:%M}"
        if local.year == now.year:
            return f"{local:%a} {local.day} {local:%b}, {local:%H:%M}"
        return f"{local.day} {local:%b %Y}, {local:%H:%M}"


def describe_duration(seconds: int | None) -> str:
    """ "45 s", "3 min 5 s" (seconds matter on a short call), "12 min", "1 h 5 min"."""
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _call_words(status: str | None, duration: int | None) -> str:
    if status == SHORT_ANSWER:
        return f"answered for {duration} s (counted as missed)"
    return (status or "call").replace("-", " ")


def _stage(outcome: str | None, booked_at, replied_at, lead_id) -> str | None:
    if outcome:
        return outcome
    if booked_at:
        return "booked"
    if replied_at:
        return "replied"
    return "texted" if lead_id else None


# The columns of a missed call's row, in order (integration.activity.query selects them so).
MISSED_COLUMNS = ("id", "created_at", "called_at", "caller_number", "contact_name", "call_status", "call_duration",
                  "status", "outcome", "lead_id", "replied_at", "reply_body", "booked_at", "lead_outcome")


def missed_cells(row: Sequence) -> tuple:
    """A missed call's words, in ActivityRow's order from `called_at` on (also the CSV's columns, which need no
    ActivityRow per call): called_at, caller_name, caller_number, call, badge, outcome, reply, replied_at, stage.
    `row` holds MISSED_COLUMNS in order (a plain tuple will do: the CSV reads 100 000 of them)."""
    (_, created_at, called_at, number, name, call_status, duration, status, outcome, lead_id, replied_at, reply,
     booked_at, lead_outcome) = row
    if status in ("pending", "sending") or not outcome or outcome == "sending":
        outcome = "sending the text now" if status == "sending" else "waiting to be texted"
    if reply and len(reply) > _REPLY_EXCERPT:
        reply = reply[:_REPLY_EXCERPT - 1].rstrip() + "…"
    return (called_at or created_at, name, number, _call_words(call_status, duration), _BADGES.get(status, status),
            _sentence(outcome), reply, replied_at, _stage(lead_outcome, booked_at, replied_at, lead_id))


def missed_row(row: Sequence) -> ActivityRow:
    """A textback_missed_calls row joined with its lead, if any (MISSED_COLUMNS in order)."""
    return ActivityRow(0, row[0], row[1], *missed_cells(row))


def ignored_row(row: Mapping, *, caller: tuple[str | None, str | None] = (None, None)) -> ActivityRow:
    """An ignored inbox row for an inbound call that was no missed call; `caller` is (name, number) when known."""
    payload = row["payload"] if isinstance(row["payload"], Mapping) else {}
    reason = (row["status_reason"] or "").removeprefix(_IGNORED_PREFIX)
    duration = _seconds(payload.get("callDuration"))
    if reason.startswith("answered"):
        # "answered, 3 min": the call was picked up, so there was nothing to text back.
        reason = f"answered, {describe_duration(duration)}" if duration is not None else "answered"
    else:
        reason = reason.replace("(location setting)", "(your settings)")
    status = normalize_status(payload.get("callStatus")) or normalize_status(payload.get("status"))
    numbers = payload.get("call") if isinstance(payload.get("call"), Mapping) else {}
    number = payload.get("from") or payload.get("fromNumber") or numbers.get("from") or caller[1]
    called_at = parse_timestamp(payload.get("dateAdded")) or row["received_at"]
    return ActivityRow(
        kind=1, id=row["id"], at=row["received_at"], called_at=called_at, caller_name=caller[0],
        caller_number=str(number) if number else None,
        call=_call_words("answered" if status in ("completed", "answered") else status, duration),
        badge="Not missed", outcome=_sentence(f"not texted: {reason}"),
    )


def _seconds(raw: object) -> int | None:
    try:
        value = int(float(raw))
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None
