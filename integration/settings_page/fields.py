"""The settings form's fields: for each, where it lives in the settings document, its plain-words label
and help, how the typed text becomes a value (with a message a contractor understands when it cannot),
and how a value is shown back in the input.

One list serves the sub-account's form and the agency's defaults form; the document, its layering and
its final validation are integration.textback.settings (this module only turns text into values).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from integration.textback.business_hours import AFTER_HOURS, BUSINESS_HOURS, HOLIDAY
from integration.textback.missed_call import ALL_MISSED_STATUSES, MAX_SHORT_CALL_SECONDS
from integration.textback.phone import normalize_number
from integration.textback.quiet_hours import WEEKDAYS, parse_day_rules, parse_window
from integration.textback.settings import EXISTING_CUSTOMER, MAX_CALL_AGE_MINUTES
from integration.textback.template import template_problems

__all__ = ["FIELDS", "FieldError", "SettingField", "field_by_path", "get_path"]


class FieldError(ValueError):
    """The typed text cannot become this field's value; the message is shown next to the field."""


@dataclass(frozen=True)
class SettingField:
    name: str
    path: tuple[str, ...]
    label: str
    help: str
    group: str
    # text, number, textarea, template, checks, select, checkbox
    widget: str
    parse: Callable[[str | list[str]], Any]
    show: Callable[[Any], str | list[str]] = str
    choices: tuple[tuple[str, str], ...] = ()
    # Shown only in the agency's defaults form.
    agency_only: bool = False
    unit: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


# --- Parsers: typed text -> value, or FieldError in plain words ---


def _whole(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        text = raw.strip()
        if not re.fullmatch(r"[+]?\d+", text):
            raise FieldError(f"Enter a whole number of {what}, from {low} to {high}.")
        value = int(text)
        if not low <= value <= high:
            raise FieldError(f"Enter a number of {what} from {low} to {high}.")
        return value
    return parse


def _decimal(low: float, high: float, what: str) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        text = raw.strip().replace(",", "").lstrip("$")
        try:
            value = float(text)
        except ValueError:
            raise FieldError(f"Enter {what} as a number, like 24 or 1.5.") from None
        if math.isnan(value) or math.isinf(value) or not low <= value <= high:
            raise FieldError(f"Enter {what} from {_plain_number(low)} to {_plain_number(high)}.")
        return int(value) if value.is_integer() else value
    return parse


def _plain_number(value: float) -> str:
    """10000000 -> "10,000,000" (not "1e+07"), 1.5 -> "1.5"."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


def _plain(limit: int, what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        text = " ".join(raw.split())
        if len(text) > limit:
            raise FieldError(f"Keep {what} to {limit} characters (it has {len(text)}).")
        return text
    return parse


def _link(raw: str) -> str:
    text = raw.strip()
    if len(text) > 200:
        raise FieldError("Keep the link to 200 characters.")
    if text and not re.fullmatch(r"https?://[^\s/$.?#][^\s]*", text):
        raise FieldError("Enter a full web address starting with https://, or leave it empty.")
    return text


def _template(raw: str) -> str:
    text = raw.replace("\r\n", "\n").strip()
    if not text:
        raise FieldError("Write the message; it cannot be empty.")
    if len(text) > 1000:
        raise FieldError(f"Keep the message to 1,000 characters (it has {len(text)}).")
    problems = template_problems(text)
    if problems:
        raise FieldError(problems[0][0].upper() + problems[0][1:] + ".")
    if any(ord(ch) < 32 and ch != "\n" for ch in text):
        raise FieldError("Remove the invisible control characters (pasted from another app?).")
    return text


def _windows(raw: str) -> list[str]:
    """ "08:00-12:00, 13:00-17:00" -> ["08:00-12:00", "13:00-17:00"]; empty: closed all day."""
    windows = []
    for part in filter(None, (p.strip() for p in re.split(r"[,;\n]", raw))):
        part = part.replace(" ", "").replace("\u2013", "-")
        try:
            parse_window(part)
        except ValueError:
            raise FieldError(f"\"{part}\" is not opening hours like 08:00-17:00 (24-hour clock, start before end)."
                             ) from None
        windows.append(part)
    return windows


def _quiet_window(raw: str) -> str:
    text = raw.strip().replace(" ", "").replace("\u2013", "-")
    try:
        window = parse_window(text)
    except ValueError:
        raise FieldError("Enter the hours texts may go out, like 08:00-21:00 (24-hour clock).") from None
    if window.start.hour < 8 or (window.end.hour, window.end.minute) > (21, 0) or window.end.second:
        raise FieldError("Texting hours can only be narrower than the federal 08:00-21:00, never wider.")
    return text


def _dates(raw: str) -> list[str]:
    days = []
    for part in filter(None, (p.strip() for p in re.split(r"[,;\n]", raw))):
        try:
            days.append(date.fromisoformat(part).isoformat())
        except ValueError:
            raise FieldError(f"\"{part}\" is not a date like 2026-12-25 (year-month-day).") from None
    return sorted(set(days))


def _phones(raw: str) -> list[str]:
    numbers = []
    for part in filter(None, (p.strip() for p in re.split(r"[,;\n]", raw))):
        if normalize_number(part) is None:
            raise FieldError(f"\"{part}\" is not a phone number; write it like +1 512 555 0100.")
        numbers.append(part)
    return numbers


def _words(limit: int, what: str) -> Callable[[str], list[str]]:
    def parse(raw: str) -> list[str]:
        words = [w.strip() for w in raw.split(",") if w.strip()]
        for word in words:
            if len(word) > limit:
                raise FieldError(f"Each {what} can be at most {limit} characters (\"{word[:20]}...\").")
            if any(ord(ch) < 32 for ch in word):
                raise FieldError(f"Remove the control characters from the {what}s.")
        return list(dict.fromkeys(words))
    return parse


def _countries(raw: str) -> list[str]:
    codes = [c.strip().upper() for c in re.split(r"[,\s]+", raw) if c.strip()]
    for code in codes:
        if not re.fullmatch(r"[A-Z]{2}", code):
            raise FieldError(f"\"{code}\" is not a 2-letter country code like US or CA.")
    return list(dict.fromkeys(codes))


def _statuses(raw: str | list[str]) -> list[str]:
    picked = [raw] if isinstance(raw, str) else list(raw)
    unknown = [s for s in picked if s not in ALL_MISSED_STATUSES]
    if unknown:
        raise FieldError("Pick from the listed call results only.")
    if not picked:
        raise FieldError("Pick at least one kind of call to text back, or turn text back off above.")
    return [s for s in ALL_MISSED_STATUSES if s in picked]


def _zone(raw: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    text = raw.strip()
    if text:
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            raise FieldError(f"\"{text}\" is not a time zone; use a name like America/Chicago, or leave it empty."
                             ) from None
    return text


_STATE_LINE = re.compile(r"^([A-Za-z]{2})(?:\s*[:=]\s*|\s+)(.+)$")


def _state_rules(raw: str) -> dict[str, dict[str, str]]:
    """Lines like "TX: mon-sat 09:00-21:00; sun 12:00-21:00" -> {"TX": {"mon-sat": ..., "sun": ...}}."""
    rules: dict[str, dict[str, str]] = {}
    for line in filter(None, (ln.strip() for ln in raw.splitlines())):
        match = _STATE_LINE.match(line)
        if not match:
            raise FieldError(f"\"{line}\": start each line with a 2-letter state, like TX: mon-sat 09:00-21:00.")
        state, spec = match.group(1).upper(), match.group(2)
        days: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            pieces = part.split()
            if len(pieces) != 2:
                raise FieldError(f"\"{line}\": write each part as days and hours, like mon-fri 09:00-18:00.")
            days[pieces[0].lower()] = pieces[1]
        try:
            parse_day_rules(days)
        except ValueError as exc:
            raise FieldError(f"{state}: {exc}.") from None
        rules[state] = days
    return rules


def _checkbox(raw: str | list[str]) -> bool:
    return (raw[-1] if isinstance(raw, list) and raw else raw) in ("on", "true", "1", "yes")


# --- Display: value -> text in the input ---


def _lines(value: Any) -> str:
    return "\n".join(map(str, value or []))


def _commas(value: Any) -> str:
    return ", ".join(map(str, value or []))


def _show_rules(value: Mapping) -> str:
    return "\n".join(f"{state}: " + "; ".join(f"{days} {hours}" for days, hours in rules.items())
                     for state, rules in sorted((value or {}).items()))


def _show_number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


STATUS_LABELS = {"no-answer": "Nobody answered", "busy": "The line was busy", "voicemail": "Went to voicemail",
                 "canceled": "The caller hung up while it rang", "failed": "The call failed to connect"}
DAY_NAMES = {"mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday", "fri": "Friday",
             "sat": "Saturday", "sun": "Sunday"}
TEMPLATE_LABELS = {
    BUSINESS_HOURS: ("Text during business hours", "Sent when a call is missed while you are open."),
    AFTER_HOURS: ("Text after hours", "Sent when a call comes in while you are closed."),
    HOLIDAY: ("Text on holidays", "Sent on the holidays listed under Business hours."),
    EXISTING_CUSTOMER: ("Text to an existing customer",
                        "Sent instead when the caller is already a customer (tag, contact type or open job)."),
}

FIELDS: tuple[SettingField, ...] = (
    # --- Messages ---
    *(SettingField(f"template_{key}", ("templates", key), label, help_, "Messages", "template", _template)
      for key, (label, help_) in TEMPLATE_LABELS.items()),
    SettingField("sender_name", ("sender_name",), "Who the text is from",
                 "The name for {user_name}. Empty: the person whose phone rang.", "Messages", "text",
                 _plain(30, "the name"), attrs={"maxlength": "30"}),
    SettingField("business_name", ("business_name",), "Business name in texts",
                 "The name for {business_name}. Empty: the sub-account's name in HighLevel.", "Messages", "text",
                 _plain(60, "the business name"), attrs={"maxlength": "60"}),
    SettingField("booking_link", ("booking_link",), "Booking link",
                 "The address for {booking_link}, e.g. your HighLevel calendar page.", "Messages", "text", _link,
                 attrs={"inputmode": "url", "maxlength": "200"}),
    SettingField("max_segments", ("max_segments",), "Longest text, in SMS segments",
                 "A longer text is cut at a word. Each segment is billed as one SMS.", "Messages", "number",
                 _whole(1, 10, "segments"), _show_number, unit="segments"),
    # --- Timing and limits ---
    SettingField("delay_seconds", ("delay_seconds",), "Wait before texting",
                 "0 texts at once. Some businesses wait a minute so the text does not feel automatic.",
                 "Timing and limits", "number", _whole(0, 3600, "seconds"), _show_number, unit="seconds"),
    SettingField("cooldown_hours", ("cooldown_hours",), "Text the same caller at most once every",
                 "A caller who rings again within this time gets no second text.", "Timing and limits", "number",
                 _decimal(0, 720, "the hours"), _show_number, unit="hours", attrs={"step": "any"}),
    SettingField("daily_cap", ("daily_cap",), "Most texts per day",
                 "A safety limit for this sub-account (counted per local day).", "Timing and limits", "number",
                 _whole(1, 10_000, "texts"), _show_number, unit="texts"),
    SettingField("max_call_age_minutes", ("max_call_age_minutes",), "Do not text calls older than",
                 "If a call reaches us late (HighLevel delays), it is not texted after this long.",
                 "Timing and limits", "number", _whole(1, MAX_CALL_AGE_MINUTES, "minutes"), _show_number,
                 unit="minutes"),
    # --- What counts as missed ---
    SettingField("missed_statuses", ("missed_statuses",), "Text back when",
                 "Which call results count as a missed call.", "What counts as a missed call", "checks",
                 _statuses, lambda v: list(v or []), choices=tuple(STATUS_LABELS.items())),
    SettingField("short_call_seconds", ("short_call_seconds",), "Also count answered calls shorter than",
                 "A forwarded call that a cell phone's voicemail picks up looks answered but short. 0: never.",
                 "What counts as a missed call", "number", _whole(0, MAX_SHORT_CALL_SECONDS, "seconds"),
                 _show_number, unit="seconds"),
    # --- Business hours ---
    *(SettingField(f"hours_{day}", ("business_hours", "weekly", day), DAY_NAMES[day],
                   "", "Business hours", "text", _windows, _commas,
                   attrs={"placeholder": "closed", "autocomplete": "off"}) for day in WEEKDAYS),
    SettingField("holidays", ("business_hours", "holidays"), "Holidays (closed all day)",
                 "One date per line, like 2026-12-25.", "Business hours", "textarea", _dates, _lines),
    SettingField("timezone", ("timezone",), "Time zone",
                 "Empty: the sub-account's time zone in HighLevel. Or a name like America/Chicago.",
                 "Business hours", "text", _zone, attrs={"autocomplete": "off"}),
    # --- Quiet hours ---
    SettingField("quiet_window", ("quiet_hours", "window"), "Texts may go out between",
                 "In the caller's local time. Federal law allows 08:00-21:00; you can only narrow it. A text "
                 "outside these hours waits until they open.", "Quiet hours", "text", _quiet_window),
    SettingField("state_rules", ("quiet_hours", "state_rules"), "Your changes to the state rules",
                 "One state per line, like TX: mon-sat 09:00-21:00; sun 12:00-21:00. A line replaces the built-in "
                 "rule for that state.", "Quiet hours", "textarea", _state_rules, _show_rules),
    # --- Who is never texted ---
    SettingField("excluded_numbers", ("excluded_numbers",), "Never text these numbers",
                 "One per line: family, suppliers, known spam.", "Who gets a text", "textarea", _phones, _lines),
    SettingField("business_numbers", ("business_numbers",), "Your own and your staff's numbers",
                 "One per line. Calls from these are never texted (HighLevel users' numbers are known already).",
                 "Who gets a text", "textarea", _phones, _lines),
    SettingField("allowed_countries", ("allowed_countries",), "Countries to text",
                 "2-letter codes, like US, CA. Empty: the business's own country.", "Who gets a text", "text",
                 _countries, _commas),
    SettingField("existing_action", ("existing_customers", "action"), "When an existing customer calls",
                 "", "Who gets a text", "select", lambda raw: _choice(raw, ("template", "same", "skip")),
                 choices=(("template", "Send the existing-customer text"), ("same", "Send the usual text"),
                          ("skip", "Do not text them"))),
    SettingField("existing_tags", ("existing_customers", "tags"), "Existing customers have the tag",
                 "Comma-separated HighLevel tags.", "Who gets a text", "text", _words(100, "tag"), _commas),
    SettingField("existing_contact_types", ("existing_customers", "contact_types"), "Or the contact type",
                 "Comma-separated, like customer.", "Who gets a text", "text", _words(50, "contact type"), _commas),
    SettingField("existing_open_opportunity", ("existing_customers", "open_opportunity"),
                 "A caller with an open opportunity is an existing customer", "", "Who gets a text", "checkbox",
                 _checkbox),
    SettingField("existing_ignore_pipelines", ("existing_customers", "ignore_pipelines"),
                 "Except opportunities in the pipelines", "Comma-separated pipeline names.", "Who gets a text",
                 "text", _words(100, "pipeline name"), _commas),
    # --- Report --- (the same value the report page and the CRM options card edit: settings crm.average_job_value)
    SettingField("average_job_value", ("crm", "average_job_value"), "Average job value",
                 "In dollars: what a booked job is worth on average. The Lead Leak report multiplies missed "
                 "calls by it, and new opportunities get it as their value.", "Report", "number",
                 _decimal(0, 10_000_000, "the job value"), _show_number, unit="$",
                 attrs={"step": "any", "autocomplete": "off"}),
)


def _choice(raw: str | list[str], allowed: tuple[str, ...]) -> str:
    value = raw if isinstance(raw, str) else (raw[0] if raw else "")
    if value not in allowed:
        raise FieldError("Pick one of the listed options.")
    return value


def get_path(document: Mapping, path: tuple[str, ...]) -> Any:
    value: Any = document
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    return value


def field_by_path(path: tuple[str, ...]) -> SettingField | None:
    """The field whose path is the longest prefix of `path` (where a nested validation message belongs)."""
    best = None
    for candidate in FIELDS:
        if path[:len(candidate.path)] == candidate.path and (best is None or len(candidate.path) > len(best.path)):
            best = candidate
    return best
