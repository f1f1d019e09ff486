"""The per-location text-back settings: one document in LocationSettings.values, with day-one defaults.

The effective settings of a location are the built-in defaults, overlaid by the agency's defaults
(Company.default_settings), overlaid by the location's own document. The schema is for our own
form, so unknown keys are an error (marshmallow RAISE), and every message names the field.

A location that never opened the settings page gets DEFAULT_SETTINGS: they text on day one.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates

from integration.agent.settings import DEFAULT_AGENT_SETTINGS, AgentSettings, AgentSettingsSchema
from integration.crm.settings import DEFAULT_CRM_SETTINGS, CrmSettings, CrmSettingsSchema
from integration.textback.business_hours import AFTER_HOURS, BUSINESS_HOURS, HOLIDAY
from integration.textback.missed_call import ALL_MISSED_STATUSES, MAX_SHORT_CALL_SECONDS
from integration.textback.phone import normalize_number
from integration.textback.quiet_hours import WEEKDAYS, Window, parse_day_rules, parse_window
from integration.textback.template import template_problems

__all__ = [
    "DEFAULT_SETTINGS",
    "EXISTING_CUSTOMER",
    "MAX_CALL_AGE_MINUTES",
    "SettingsError",
    "TextBackSettings",
    "TextBackSettingsSchema",
    "effective_settings",
    "merge_documents",
]

EXISTING_CUSTOMER = "existing_customer"
# The most a location may set max_call_age_minutes to. The inbox keeps webhooks longer than this
# (workers.config.MIN_INBOX_RETENTION_DAYS), so a call replayed after its row was pruned is always too old to text.
MAX_CALL_AGE_MINUTES = 7 * 24 * 60

DEFAULT_SETTINGS: dict[str, Any] = {
    "missed_statuses": list(ALL_MISSED_STATUSES),
    # Forwarded calls answered by a carrier's voicemail show as short "completed" calls.
    "short_call_seconds": 10,
    "delay_seconds": 0,
    "cooldown_hours": 24,
    "daily_cap": 200,
    # HighLevel retries a webhook for about 70 minutes; a call older than this is not texted.
    "max_call_age_minutes": 180,
    # Empty: the business's own country (the US and Canada together).
    "allowed_countries": [],
    "excluded_numbers": [],
    "business_numbers": [],
    "sender_name": "",
    "business_name": "",
    "booking_link": "",
    "max_segments": 3,
    # Empty: the location's time zone from HighLevel.
    "timezone": "",
    "templates": {
        BUSINESS_HOURS: "Hi {first_name|there}, this is {user_name} at {business_name}. "
                        "Sorry we missed your call! What can we help you with?",
        AFTER_HOURS: "Hi {first_name|there}, this is {user_name} at {business_name}. Sorry we missed your call! "
                     "We're closed right now and back {next_open_time}. What can we help you with?",
        HOLIDAY: "Hi {first_name|there}, this is {business_name}. Sorry we missed your call! We're closed for "
                 "the holiday and back {next_open_time}. Reply here and we'll get back to you.",
        EXISTING_CUSTOMER: "Hi {first_name|there}, this is {user_name} at {business_name}. Sorry we missed "
                           "your call! Reply here and we'll get right back to you.",
    },
    "existing_customers": {
        # template: their own message; skip: no text; same: treat them like anyone else.
        "action": "template",
        "tags": ["customer"],
        "contact_types": ["customer"],
        "open_opportunity": True,
        # Opportunities in these pipelines (by name) do not make a caller an existing customer:
        # the missed-call pipeline itself holds every earlier caller.
        "ignore_pipelines": ["Missed Call"],
    },
    "business_hours": {
        "weekly": {"mon": ["08:00-17:00"], "tue": ["08:00-17:00"], "wed": ["08:00-17:00"],
                   "thu": ["08:00-17:00"], "fri": ["08:00-17:00"], "sat": [], "sun": []},
        "holidays": [],
    },
    "quiet_hours": {
        # Only ever stricter than the federal 08:00-21:00.
        "window": "08:00-21:00",
        # {"FL": {"mon-sun": "08:00-20:00"}}: replaces the built-in rule for that state.
        "state_rules": {},
    },
    # What the CRM follow-up does after a text and a reply (integration.crm.settings).
    "crm": DEFAULT_CRM_SETTINGS,
    # The booking agent that answers replies when no person does (integration.agent.settings); off by default.
    "agent": DEFAULT_AGENT_SETTINGS,
}


class SettingsError(ValueError):
    """A settings document does not validate; `messages` is marshmallow's per-field dict."""

    def __init__(self, messages: dict) -> None:
        super().__init__(_flatten(messages))
        self.messages = messages


def _flatten(messages: object, prefix: str = "") -> str:
    if isinstance(messages, Mapping):
        return "; ".join(_flatten(v, f"{prefix}{k}." if prefix or k != "_schema" else "") for k, v in messages.items())
    if isinstance(messages, list | tuple):
        return "; ".join(_flatten(v, prefix) for v in messages)
    return f"{prefix.rstrip('.')}: {messages}" if prefix else str(messages)


def _check_window(text: str) -> None:
    try:
        parse_window(text)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _check_template(text: str) -> None:
    problems = template_problems(text)
    if problems:
        raise ValidationError(problems)
    if any(ord(ch) < 32 and ch not in "\n" for ch in text):
        raise ValidationError("control characters are not allowed")


def _check_phone(text: str) -> None:
    if normalize_number(text) is None:
        raise ValidationError(f"{text!r} is not a phone number")


class TemplatesSchema(Schema):
    class Meta:
        unknown = RAISE

    business_hours = fields.String(required=True, validate=[validate.Length(max=1000), _check_template])
    after_hours = fields.String(required=True, validate=[validate.Length(max=1000), _check_template])
    holiday = fields.String(required=True, validate=[validate.Length(max=1000), _check_template])
    existing_customer = fields.String(required=True, validate=[validate.Length(max=1000), _check_template])


class ExistingCustomersSchema(Schema):
    class Meta:
        unknown = RAISE

    action = fields.String(required=True, validate=validate.OneOf(["template", "skip", "same"]))
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=100)), required=True)
    contact_types = fields.List(fields.String(validate=validate.Length(min=1, max=50)), required=True)
    open_opportunity = fields.Boolean(required=True)
    ignore_pipelines = fields.List(fields.String(validate=validate.Length(min=1, max=100)), required=True)


class BusinessHoursSchema(Schema):
    class Meta:
        unknown = RAISE

    weekly = fields.Dict(keys=fields.String(validate=validate.OneOf(WEEKDAYS)),
                         values=fields.List(fields.String(validate=_check_window)), required=True)
    holidays = fields.List(fields.Date(), required=True)


class QuietHoursSchema(Schema):
    class Meta:
        unknown = RAISE

    window = fields.String(required=True, validate=_check_window)
    state_rules = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[A-Z]{2}$", error="use a 2-letter state")),
                              values=fields.Dict(keys=fields.String(), values=fields.String()), required=True)

    @validates("window")
    def _within_federal(self, value: str, **_: object) -> None:
        window = parse_window(value)
        if window.start.hour < 8 or (window.end.hour, window.end.minute) > (21, 0):
            raise ValidationError("quiet hours can only be stricter than the federal 08:00-21:00")

    @validates("state_rules")
    def _rules_parse(self, value: dict, **_: object) -> None:
        for state, rules in value.items():
            try:
                parse_day_rules(rules)
            except ValueError as exc:
                raise ValidationError(f"{state}: {exc}") from None


class TextBackSettingsSchema(Schema):
    """The whole settings document; load() returns a TextBackSettings."""

    class Meta:
        unknown = RAISE

    missed_statuses = fields.List(fields.String(validate=validate.OneOf(ALL_MISSED_STATUSES)), required=True)
    short_call_seconds = fields.Integer(required=True, validate=validate.Range(0, MAX_SHORT_CALL_SECONDS))
    delay_seconds = fields.Integer(required=True, validate=validate.Range(0, 3600))
    cooldown_hours = fields.Float(required=True, validate=validate.Range(0, 24 * 30))
    daily_cap = fields.Integer(required=True, validate=validate.Range(1, 10_000))
    max_call_age_minutes = fields.Integer(required=True, validate=validate.Range(1, MAX_CALL_AGE_MINUTES))
    allowed_countries = fields.List(fields.String(validate=validate.Regexp(r"^[A-Z]{2}$",
                                                                            error="use 2-letter country codes")),
                                    required=True)
    excluded_numbers = fields.List(fields.String(validate=_check_phone), required=True)
    business_numbers = fields.List(fields.String(validate=_check_phone), required=True)
    sender_name = fields.String(required=True, validate=validate.Length(max=30))
    business_name = fields.String(required=True, validate=validate.Length(max=60))
    booking_link = fields.String(required=True, validate=validate.Length(max=200))
    max_segments = fields.Integer(required=True, validate=validate.Range(1, 10))
    timezone = fields.String(required=True)
    templates = fields.Nested(TemplatesSchema, required=True)
    existing_customers = fields.Nested(ExistingCustomersSchema, required=True)
    business_hours = fields.Nested(BusinessHoursSchema, required=True)
    quiet_hours = fields.Nested(QuietHoursSchema, required=True)
    crm = fields.Nested(CrmSettingsSchema, required=True)
    agent = fields.Nested(AgentSettingsSchema, required=True)

    @validates("timezone")
    def _zone_exists(self, value: str, **_: object) -> None:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValidationError(f"{value!r} is not a time zone name like America/Chicago") from None

    @validates("booking_link")
    def _link_is_url(self, value: str, **_: object) -> None:
        if value and not value.startswith(("https://", "http://")):
            raise ValidationError("the booking link must start with https://")

    @post_load
    def _build(self, data: dict, **_: object) -> TextBackSettings:
        return TextBackSettings.from_loaded(data)


@dataclass(frozen=True)
class TextBackSettings:
    """Validated settings of one location, with windows and numbers already parsed."""

    missed_statuses: tuple[str, ...]
    short_call_seconds: int
    delay_seconds: int
    cooldown_hours: float
    daily_cap: int
    max_call_age_minutes: int
    allowed_countries: tuple[str, ...]
    excluded_numbers: frozenset[str]
    business_numbers: frozenset[str]
    sender_name: str
    business_name: str
    booking_link: str
    max_segments: int
    timezone: str
    templates: Mapping[str, str]
    existing_action: str
    existing_tags: frozenset[str]
    existing_contact_types: frozenset[str]
    existing_open_opportunity: bool
    existing_ignore_pipelines: frozenset[str]
    weekly_hours: Mapping[str, tuple[str, ...]]
    holidays: tuple[date, ...]
    quiet_window: Window
    state_rules: Mapping[str, Mapping[str, str]]
    crm: CrmSettings
    agent: AgentSettings

    @classmethod
    def from_loaded(cls, data: dict) -> TextBackSettings:
        existing, hours, quiet = data["existing_customers"], data["business_hours"], data["quiet_hours"]
        return cls(
            missed_statuses=tuple(data["missed_statuses"]),
            short_call_seconds=data["short_call_seconds"],
            delay_seconds=data["delay_seconds"],
            cooldown_hours=data["cooldown_hours"],
            daily_cap=data["daily_cap"],
            max_call_age_minutes=data["max_call_age_minutes"],
            allowed_countries=tuple(data["allowed_countries"]),
            excluded_numbers=frozenset(filter(None, map(normalize_number, data["excluded_numbers"]))),
            business_numbers=frozenset(filter(None, map(normalize_number, data["business_numbers"]))),
            sender_name=data["sender_name"].strip(),
            business_name=data["business_name"].strip(),
            booking_link=data["booking_link"].strip(),
            max_segments=data["max_segments"],
            timezone=data["timezone"],
            templates=dict(data["templates"]),
            existing_action=existing["action"],
            existing_tags=frozenset(t.strip().lower() for t in existing["tags"]),
            existing_contact_types=frozenset(t.strip().lower() for t in existing["contact_types"]),
            existing_open_opportunity=existing["open_opportunity"],
            existing_ignore_pipelines=frozenset(p.strip().lower() for p in existing["ignore_pipelines"]),
            weekly_hours={day: tuple(hours["weekly"].get(day, ())) for day in WEEKDAYS},
            holidays=tuple(hours["holidays"]),
            quiet_window=parse_window(quiet["window"]),
            state_rules=dict(quiet["state_rules"]),
            crm=CrmSettings.from_loaded(data["crm"]),
            agent=AgentSettings.from_loaded(data["agent"]),
        )


def merge_documents(base: Mapping, *overlays: Mapping | None) -> dict:
    """Deep-merge settings documents: dicts merge key by key, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for overlay in overlays:
        for key, value in (overlay or {}).items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = merge_documents(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
    return merged


def effective_settings(*, company_defaults: Mapping | None = None, location_values: Mapping | None = None
                       ) -> TextBackSettings:
    """The settings a location runs with.

    Raises:
        SettingsError: the merged document does not validate (the message names each field).
    """
    document = merge_documents(DEFAULT_SETTINGS, company_defaults, location_values)
    return _validated(json.dumps(document, sort_keys=True))


@functools.lru_cache(maxsize=512)
def _validated(canonical_document: str) -> TextBackSettings:
    """Validate a merged document once per distinct content: every job reads its location's settings
    (several times per missed call), and marshmallow validation was ~14% of a worker's CPU. The result
    is a frozen dataclass that callers never mutate, so sharing it is safe; invalid documents are not
    cached (the exception propagates)."""
    try:
        return TextBackSettingsSchema().load(json.loads(canonical_document))
    except ValidationError as exc:
        raise SettingsError(exc.messages) from None
