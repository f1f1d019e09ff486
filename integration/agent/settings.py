"""The booking agent's options of a location: on or off, the calendar it books on, the grace period, the cap.

They live in the settings document beside the text-back and CRM options (LocationSettings.values["agent"],
overlaying Company.default_settings["agent"] and DEFAULT_AGENT_SETTINGS) and are validated by
TextBackSettingsSchema through the nested AgentSettingsSchema here. Off by default: a sub-account turns
the agent on and picks one of its HighLevel calendars on the app page (integration.settings_page.agent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

__all__ = ["DEFAULT_AGENT_SETTINGS", "MAX_GRACE_MINUTES", "AgentSettings", "AgentSettingsSchema"]

MAX_GRACE_MINUTES = 60

DEFAULT_AGENT_SETTINGS: dict[str, Any] = {
    "enabled": False,
    # The HighLevel calendar the agent books on (one of GET /calendars/); empty: not chosen, the agent waits.
    "calendar_id": "",
    # How long a person has to answer a reply before the agent does (0: at once).
    "grace_minutes": 2,
    # The most texts the agent sends in one conversation within any hour; then a person takes over.
    "max_messages_per_hour": 6,
}


class AgentSettingsSchema(Schema):
    """The "agent" section of the settings document (unknown keys are an error, like the rest)."""

    class Meta:
        unknown = RAISE

    enabled = fields.Boolean(required=True)
    calendar_id = fields.String(required=True, validate=validate.Length(max=64))
    grace_minutes = fields.Float(required=True, allow_nan=False, validate=validate.Range(0, MAX_GRACE_MINUTES))
    max_messages_per_hour = fields.Integer(required=True, validate=validate.Range(1, 30))

    @validates_schema
    def _calendar_when_on(self, data: dict, **_: object) -> None:
        if data.get("enabled") and not str(data.get("calendar_id") or "").strip():
            raise ValidationError("choose the calendar the agent books on before turning it on", "calendar_id")


@dataclass(frozen=True)
class AgentSettings:
    """Validated agent options of one location."""

    enabled: bool
    calendar_id: str
    grace_minutes: float
    max_messages_per_hour: int

    @property
    def active(self) -> bool:
        """On, with a calendar to book on: the only case in which the agent speaks."""
        return self.enabled and bool(self.calendar_id)

    @classmethod
    def from_loaded(cls, data: dict) -> AgentSettings:
        return cls(enabled=bool(data["enabled"]), calendar_id=data["calendar_id"].strip(),
                   grace_minutes=float(data["grace_minutes"]), max_messages_per_hour=int(data["max_messages_per_hour"]))
