"""What counts as a missed call, read from an InboundMessage webhook payload.

A missed call is an inbound CALL whose status or callStatus is one the location counts (by default
no-answer, busy, voicemail, canceled, failed), or an answered call shorter than the location's
threshold: calls forwarded to a cell whose carrier voicemail picks up show as "completed", the top
complaint about HighLevel's own feature. Outbound calls never count.

Documented payload quirks this tolerates (ghl-api-facts §2.7, webhook_examples/):
- an inbound call labelled "type": "OutboundMessage" (InboundMessage.2.json): direction decides;
- a voicemail call with `status` but no `callStatus`/`callDuration` (InboundMessage.3.json);
- `callDuration` as a number or a string; statuses in any case, with "_" or "cancelled";
- no from/to numbers on older call webhooks (they were added later), so both are optional.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "ALL_MISSED_STATUSES",
    "Missed",
    "NotMissed",
    "call_key",
    "classify_call",
    "is_call",
    "normalize_status",
    "parse_timestamp",
]

ALL_MISSED_STATUSES = ("no-answer", "busy", "voicemail", "canceled", "failed")
# The most a location may set "answered but shorter than N seconds counts as missed" to.
MAX_SHORT_CALL_SECONDS = 120
ANSWERED_STATUSES = {"completed", "answered"}
IN_PROGRESS_STATUSES = {"pending", "queued", "initiated", "ringing", "in-progress"}
SHORT_ANSWER = "answered-short"


@dataclass(frozen=True)
class Missed:
    """One missed inbound call, with everything the payload says about it."""

    call_key: str
    location_id: str
    contact_id: str | None
    conversation_id: str | None
    message_id: str | None
    status: str
    duration: int | None
    called_at: datetime | None
    user_id: str | None
    caller_number: str | None
    called_number: str | None

    @property
    def description(self) -> str:
        """Readable: "no answer", "voicemail", "answered for 4 s"."""
        if self.status == SHORT_ANSWER:
            return f"answered for {self.duration} s"
        return self.status.replace("-", " ")


@dataclass(frozen=True)
class NotMissed:
    """Why a payload is not a missed call, in words a contractor can read."""

    reason: str


def normalize_status(raw: object) -> str | None:
    """Lower-case, dashes for underscores and spaces, and the one British spelling HighLevel may use."""
    if raw is None:
        return None
    text = str(raw).strip().lower().replace("_", "-").replace(" ", "-")
    if not text:
        return None
    return {"cancelled": "canceled", "noanswer": "no-answer", "no-answered": "no-answer"}.get(text, text)


def is_call(payload: Mapping) -> bool:
    message_type = str(payload.get("messageType") or "").strip().upper()
    return message_type in {"CALL", "TYPE_CALL"}


def never_missed(payload: Mapping) -> NotMissed | None:
    """Why this call can be no location's missed call, whatever its settings; None when settings decide.

    Classifying under the most counting settings there are (every missed status, the longest short-call
    threshold): a call not missed then is not missed under any. The receiver stores such calls as ignored
    at once, so an answered call (most call webhooks) costs no job.
    """
    verdict = classify_call(payload, short_call_seconds=MAX_SHORT_CALL_SECONDS, fallback_key="identity-not-needed")
    return verdict if isinstance(verdict, NotMissed) else None


def classify_call(payload: Mapping, *, counted_statuses: Collection[str] = ALL_MISSED_STATUSES,
                  short_call_seconds: int = 0, fallback_key: str | None = None) -> Missed | NotMissed:
    """Decide whether `payload` is a missed call under the location's options.

    Args:
        payload: the webhook body (InboundMessage, or a mislabelled OutboundMessage).
        counted_statuses: which of ALL_MISSED_STATUSES this location counts.
        short_call_seconds: answered calls shorter than this count as missed; 0 turns it off.
        fallback_key: identity to use when the payload has neither messageId nor conversation+date.
    """
    if not is_call(payload):
        return NotMissed(f"not a call ({payload.get('messageType') or 'no messageType'})")
    direction = str(payload.get("direction") or "").strip().lower()
    if not direction and payload.get("type") == "InboundMessage":
        direction = "inbound"
    if direction != "inbound":
        return NotMissed(f"{direction or 'unknown-direction'} call; only inbound calls count")
    location_id = payload.get("locationId")
    if not location_id:
        return NotMissed("call without a locationId")

    statuses = [s for s in (normalize_status(payload.get("callStatus")), normalize_status(payload.get("status"))) if s]
    duration = _duration(payload)
    counted = {normalize_status(s) for s in counted_statuses}
    missed_status = next((s for s in statuses if s in counted), None)
    if missed_status is None:
        ignored = next((s for s in statuses if s in ALL_MISSED_STATUSES), None)
        if ignored is not None:
            return NotMissed(f"{ignored.replace('-', ' ')} calls are not counted as missed (location setting)")
        if any(s in ANSWERED_STATUSES for s in statuses):
            if duration is not None and duration < short_call_seconds:
                missed_status = SHORT_ANSWER
            else:
                shown = f" for {duration} s" if duration is not None else ""
                return NotMissed(f"answered{shown}")
        elif any(s in IN_PROGRESS_STATUSES for s in statuses):
            return NotMissed(f"call still in progress ({statuses[0]})")
        elif statuses:
            return NotMissed(f"call status {statuses[0]!r} is not a missed call")
        else:
            return NotMissed("call has no status")

    key = call_key(payload) or (f"event:{fallback_key}" if fallback_key else None)
    if key is None:
        return NotMissed("call cannot be identified (no messageId, conversationId or dateAdded)")
    numbers = payload.get("call") if isinstance(payload.get("call"), Mapping) else {}
    return Missed(
        call_key=key,
        location_id=str(location_id),
        contact_id=_text(payload.get("contactId")),
        conversation_id=_text(payload.get("conversationId")),
        message_id=_text(payload.get("messageId")),
        status=missed_status,
        duration=duration,
        called_at=parse_timestamp(payload.get("dateAdded")),
        user_id=_text(payload.get("userId")),
        caller_number=_text(payload.get("from") or payload.get("fromNumber") or numbers.get("from")),
        called_number=_text(payload.get("to") or payload.get("toNumber") or numbers.get("to")),
    )


def call_key(payload: Mapping) -> str | None:
    """The identity of a call, stable across duplicate webhooks with different webhookIds.

    The call's messageId when present; else its conversation and the instant it was added.
    """
    location = payload.get("locationId") or ""
    message_id = _text(payload.get("messageId"))
    if message_id:
        return f"msg:{location}:{message_id}"
    conversation_id = _text(payload.get("conversationId"))
    added = parse_timestamp(payload.get("dateAdded"))
    if conversation_id and added:
        return f"conv:{location}:{conversation_id}:{added.isoformat(timespec='milliseconds')}"
    return None


def parse_timestamp(raw: object) -> datetime | None:
    """ISO-8601 (with "Z") or epoch milliseconds, as UTC; None when absent or unreadable."""
    if raw is None or raw == "":
        return None
    try:
        if isinstance(raw, int | float):
            return datetime.fromtimestamp(raw / 1000, tz=UTC)
        parsed = datetime.fromisoformat(str(raw).strip().replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _duration(payload: Mapping) -> int | None:
    raw = payload.get("callDuration")
    if raw is None and isinstance(payload.get("meta"), Mapping):
        raw = payload["meta"].get("callDuration")
    if raw is None or isinstance(raw, bool):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return int(value) if value >= 0 else None


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None
