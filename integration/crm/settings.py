"""The CRM options of a location: which pipeline and stages, whose task, which tags, how long a reply counts.

They live in the same settings document as the text-back options (LocationSettings.values["crm"],
overlaying Company.default_settings["crm"] and the built-in DEFAULT_CRM_SETTINGS), and are
validated by TextBackSettingsSchema through the nested CrmSettingsSchema here.

An empty id means "not picked yet": the pipeline named "Missed Call" (else the location's first
pipeline) and its first stage, the stages named "Replied" and "Booked" when the pipeline has them,
and the location's first admin user. See integration.crm.directory for how those are resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from integration.textback.phone import normalize_number

__all__ = ["DEFAULT_CRM_SETTINGS", "CrmSettings", "CrmSettingsSchema"]

DEFAULT_CRM_SETTINGS: dict[str, Any] = {
    "pipeline_id": "",
    "new_stage_id": "",
    "replied_stage_id": "",
    "booked_stage_id": "",
    "assigned_user_id": "",
    # The opportunity's monetaryValue, and the report's "average job value x missed calls".
    "average_job_value": 0,
    "missed_call_tag": "missed-call",
    "replied_tag": "missed-call-replied",
    # A caller's text this long after our text still counts as the reply to the missed call.
    "reply_window_hours": 72,
    "task_due_minutes": 15,
    # Empty: nobody is texted when a caller replies.
    "on_call_number": "",
}

_ID = validate.Length(max=64)


def _check_tag(text: str) -> None:
    if not text.strip():
        raise ValidationError("a tag cannot be blank")
    if any(ord(ch) < 32 for ch in text) or "," in text:
        raise ValidationError("a tag cannot hold commas or control characters")


def _check_optional_phone(text: str) -> None:
    if text.strip() and normalize_number(text) is None:
        raise ValidationError(f"{text!r} is not a phone number")


class CrmSettingsSchema(Schema):
    """The "crm" section of the settings document (unknown keys are an error, like the rest)."""

    class Meta:
        unknown = RAISE

    pipeline_id = fields.String(required=True, validate=_ID)
    new_stage_id = fields.String(required=True, validate=_ID)
    replied_stage_id = fields.String(required=True, validate=_ID)
    booked_stage_id = fields.String(required=True, validate=_ID)
    assigned_user_id = fields.String(required=True, validate=_ID)
    average_job_value = fields.Float(required=True, allow_nan=False, validate=validate.Range(0, 10_000_000))
    missed_call_tag = fields.String(required=True, validate=[validate.Length(max=100), _check_tag])
    replied_tag = fields.String(required=True, validate=[validate.Length(max=100), _check_tag])
    reply_window_hours = fields.Integer(required=True, validate=validate.Range(1, 24 * 30))
    task_due_minutes = fields.Integer(required=True, validate=validate.Range(0, 7 * 24 * 60))
    on_call_number = fields.String(required=True, validate=[validate.Length(max=32), _check_optional_phone])


@dataclass(frozen=True)
class CrmSettings:
    """Validated CRM options of one location (ids stripped; the on-call number in E.164 or None)."""

    pipeline_id: str
    new_stage_id: str
    replied_stage_id: str
    booked_stage_id: str
    assigned_user_id: str
    average_job_value: float
    missed_call_tag: str
    replied_tag: str
    reply_window_hours: int
    task_due_minutes: int
    on_call_number: str | None

    @classmethod
    def from_loaded(cls, data: dict) -> CrmSettings:
        return cls(
            pipeline_id=data["pipeline_id"].strip(),
            new_stage_id=data["new_stage_id"].strip(),
            replied_stage_id=data["replied_stage_id"].strip(),
            booked_stage_id=data["booked_stage_id"].strip(),
            assigned_user_id=data["assigned_user_id"].strip(),
            average_job_value=float(data["average_job_value"]),
            missed_call_tag=data["missed_call_tag"].strip(),
            replied_tag=data["replied_tag"].strip(),
            reply_window_hours=data["reply_window_hours"],
            task_due_minutes=data["task_due_minutes"],
            on_call_number=normalize_number(data["on_call_number"]) if data["on_call_number"].strip() else None,
        )
