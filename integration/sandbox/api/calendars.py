"""Calendars API (Version 2021-04-15): list calendars, free slots, book an appointment."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import jsonify, request

from integration.sandbox.api import bp
from integration.sandbox.api.common import json_body, owned_record, parse_iso
from integration.sandbox.crm import emit_events
from integration.sandbox.errors import ApiError, validation_error
from integration.sandbox.guard import LOCATION, require_location, required_arg, resource, sandbox_state
from integration.sandbox.ids import iso, new_id, utcnow
from integration.sandbox.payloads import appointment_event

READ = ("calendars.readonly", "calendars.write")
_MAX_RANGE = timedelta(days=31)
_APPOINTMENT_FIELDS = {"title", "meetingLocationType", "meetingLocationId", "overrideLocationConfig",
                       "appointmentStatus", "assignedUserId", "description", "address", "ignoreDateRange",
                       "toNotify", "ignoreFreeSlotValidation", "rrule", "calendarId", "locationId", "contactId",
                       "startTime", "endTime"}
_APPOINTMENT_STATUSES = ("new", "confirmed", "cancelled", "showed", "noshow", "invalid")


@bp.get("/calendars/")
@resource(token_classes=(LOCATION,), scopes=READ)
def list_calendars():
    location_id = required_arg("locationId")
    require_location(location_id)
    state = sandbox_state()
    with state.lock:
        found = [copy.deepcopy(c) for c in state.world.calendars.values() if c["locationId"] == location_id]
    return jsonify({"calendars": found})


def _ms_arg(name: str) -> datetime:
    raw = required_arg(name)
    try:
        return datetime.fromtimestamp(int(float(raw)) / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise validation_error(f"{name} must be a number (epoch milliseconds)") from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise validation_error(f"timezone {name!r} is not a valid IANA time zone") from None


def _booked(world, calendar_id: str) -> list[tuple[datetime, datetime]]:
    return [(datetime.fromisoformat(a["startTime"]), datetime.fromisoformat(a["endTime"]))
            for a in world.appointments.values()
            if a["calendarId"] == calendar_id and a["appointmentStatus"] != "cancelled"]


def open_slots(calendar: dict, *, zone: ZoneInfo, start: datetime, end: datetime, now: datetime,
               booked: list[tuple[datetime, datetime]]) -> list[datetime]:
    """Slot starts inside the calendar's open hours (in `zone`), in [start, end), after now, not booked."""
    length = timedelta(minutes=calendar["slotDuration"])
    step = timedelta(minutes=calendar.get("slotInterval") or calendar["slotDuration"])
    slots = []
    day = start.astimezone(zone).date()
    last_day = end.astimezone(zone).date()
    while day <= last_day:
        weekday = (day.weekday() + 1) % 7  # HighLevel counts 0 = Sunday
        for rule in calendar["openHours"]:
            if weekday not in rule["daysOfTheWeek"]:
                continue
            for hours in rule["hours"]:
                slot = datetime(day.year, day.month, day.day, hours["openHour"], hours["openMinute"], tzinfo=zone)
                close = datetime(day.year, day.month, day.day, hours["closeHour"], hours["closeMinute"], tzinfo=zone)
                while slot + length <= close:
                    taken = any(slot < b_end and b_start < slot + length for b_start, b_end in booked)
                    if start <= slot < end and slot > now and not taken:
                        slots.append(slot)
                    slot += step
        day += timedelta(days=1)
    return slots


@bp.get("/calendars/<calendar_id>/free-slots")
@resource(token_classes=(LOCATION,), scopes=READ)
def free_slots(calendar_id: str):
    calendar = owned_record("calendars", calendar_id, not_found="Calendar not found")
    start, end = _ms_arg("startDate"), _ms_arg("endDate")
    if end <= start:
        raise validation_error("endDate must be after startDate")
    if end - start > _MAX_RANGE:
        raise validation_error("The date range can be at most 31 days")
    state = sandbox_state()
    with state.lock:
        location_zone = state.world.locations[calendar["locationId"]]["timezone"]
        booked = _booked(state.world, calendar_id)
        calendar = copy.deepcopy(calendar)
    zone = _zone(request.args.get("timezone") or location_zone)
    # Open hours are the business's, in the sub-account's zone; the answer is in the asked zone.
    slots = open_slots(calendar, zone=ZoneInfo(location_zone), start=start, end=end, now=utcnow(),
                       booked=booked)
    answer: dict[str, dict] = {}
    for slot in slots:
        local = slot.astimezone(zone)
        answer.setdefault(local.date().isoformat(), {"slots": []})["slots"].append(local.isoformat())
    return jsonify(answer)


@bp.post("/calendars/events/appointments")
@resource(token_classes=(LOCATION,), scopes=("calendars/events.write",))
def create_appointment():
    body = json_body(allowed=_APPOINTMENT_FIELDS)
    problems = [f"{name} should not be empty" for name in ("calendarId", "locationId", "contactId", "startTime")
                if not isinstance(body.get(name), str) or not body.get(name)]
    if body.get("appointmentStatus") is not None and body["appointmentStatus"] not in _APPOINTMENT_STATUSES:
        problems.append("appointmentStatus must be one of the following values: " + ", ".join(_APPOINTMENT_STATUSES))
    if problems:
        raise validation_error(*problems)
    location_id = body["locationId"]
    require_location(location_id)
    start = parse_iso("startTime", body["startTime"], require_offset=True)
    state = sandbox_state()
    with state.lock:
        world = state.world
        calendar = world.calendars.get(body["calendarId"])
        if calendar is None or calendar["locationId"] != location_id:
            raise ApiError(400, "Calendar not found")
        contact = world.contacts.get(body["contactId"])
        if contact is None or contact["locationId"] != location_id:
            raise ApiError(400, "Contact not found")
        if body.get("endTime"):
            end = parse_iso("endTime", body["endTime"], require_offset=True)
            if end <= start:
                raise validation_error("endTime must be after startTime")
        else:
            end = start + timedelta(minutes=calendar["slotDuration"])
        if not body.get("ignoreFreeSlotValidation"):
            zone = ZoneInfo(world.locations[location_id]["timezone"])
            fits = open_slots(calendar, zone=zone, start=start, end=start + timedelta(seconds=1),
                              now=utcnow(), booked=_booked(world, calendar["id"]))
            if not fits:
                raise ApiError(400, "The slot you have selected is no longer available.")
        team = [m["userId"] for m in calendar["teamMembers"]]
        now = iso()
        appointment = {
            "id": new_id(), "calendarId": calendar["id"], "locationId": location_id, "contactId": contact["id"],
            "startTime": start.isoformat(), "endTime": end.astimezone(start.tzinfo).isoformat(),
            "title": body.get("title") or f"Service call with {contact['name'] or contact['phone']}",
            "meetingLocationType": body.get("meetingLocationType") or "custom",
            "appointmentStatus": body.get("appointmentStatus") or "confirmed",
            "assignedUserId": body.get("assignedUserId") or (team[0] if team else ""),
            "address": body.get("address") or "", "isRecurring": bool(body.get("rrule")),
            "notes": body.get("description") or "", "source": "api", "dateAdded": now, "dateUpdated": now,
        }
        if body.get("rrule"):
            appointment["rrule"] = body["rrule"]
        world.appointments[appointment["id"]] = appointment
        answer = {k: v for k, v in appointment.items() if k not in {"notes", "source", "dateAdded", "dateUpdated"}}
        event = appointment_event("AppointmentCreate", appointment)
    emit_events(state, [event])
    return jsonify(answer)
