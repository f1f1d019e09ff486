"""An optional language model for understanding a caller's text, behind an OpenAI-compatible HTTP API.

Configured by LLM_API_BASE, LLM_API_KEY and LLM_MODEL (integration.config); unset, the agent uses the rules
alone. The model only reads: its answer is a JSON object validated against HeardSchema (an intent from the
policy's list, an optional slot number, day and clock times) before it becomes a Heard, and the policy still
decides what is offered and booked, from HighLevel's free slots. A timeout, an HTTP error, unreadable or
off-schema JSON, or a date outside the next 60 days falls back to the deterministic understanding. Two things
the model can never override: a STOP and an emergency the rules recognise.

The API key is sent only in the Authorization header and never logged.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import requests
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from integration.agent.policy import Memory
from integration.agent.understanding import EMERGENCIES, EMERGENCY, INTENTS, STOP, Heard, When, understand

__all__ = ["HeardSchema", "LlmUnderstander"]

log = logging.getLogger(__name__)

_CLOCK = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="use HH:MM")
_PROMPT = """You read one SMS from a customer of a home-service contractor (plumber, roofer, HVAC) and answer with
one JSON object only, no prose. Keys: intent (one of {intents}), emergency (null, "gas", "water" or "heat"),
choice (null, or the number 1-3 of an offered slot the customer picks, -1 for "the last one"), day and last_day
(null or YYYY-MM-DD: the day or range of days they ask for), earliest, latest, exact (null or HH:MM, 24-hour:
a time window or an exact time they ask for), rejects (true if they turn the offered times down), asks_price
(true if they ask what it costs), mentions_job (true if they describe the work). Today is {today} ({weekday})
and it is {clock} where the customer is. Offered slots, numbered: {offered}."""


class HeardSchema(Schema):
    """The model's answer; anything else is rejected (unknown keys are dropped, wrong types refused)."""

    class Meta:
        unknown = EXCLUDE

    intent = fields.String(required=True, validate=validate.OneOf(INTENTS))
    emergency = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(EMERGENCIES))
    choice = fields.Integer(load_default=None, allow_none=True, strict=True, validate=validate.OneOf([-1, 1, 2, 3]))
    day = fields.Date(load_default=None, allow_none=True)
    last_day = fields.Date(load_default=None, allow_none=True)
    earliest = fields.String(load_default=None, allow_none=True, validate=_CLOCK)
    latest = fields.String(load_default=None, allow_none=True, validate=_CLOCK)
    exact = fields.String(load_default=None, allow_none=True, validate=_CLOCK)
    rejects = fields.Boolean(load_default=False)
    asks_price = fields.Boolean(load_default=False)
    mentions_job = fields.Boolean(load_default=False)


class LlmUnderstander:
    """`understander(text, now, zone, memory) -> Heard` through the model, the rules when it fails."""

    def __init__(self, *, api_base: str, api_key: str, model: str, timeout: float = 4.0,
                 session: requests.Session | None = None) -> None:
        self.url = api_base.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self.model = model
        self.timeout = timeout
        self.session = session or requests.Session()
        # How the last text was understood ("model" or "rules: <why>"), for tests and logs.
        self.last_source = ""

    def __repr__(self) -> str:
        return f"LlmUnderstander(url={self.url!r}, model={self.model!r})"

    def __call__(self, text: str, now: datetime, zone: ZoneInfo, memory: Memory) -> Heard:
        rules = understand(text, now=now, zone=zone)
        if rules.intent in (STOP, EMERGENCY):
            self.last_source = "rules: a STOP or an emergency is never left to the model"
            return rules
        try:
            heard = self._ask(text, now.astimezone(zone), memory)
        except (requests.RequestException, ValueError, ValidationError, KeyError, TypeError, IndexError) as exc:
            self.last_source = f"rules: {type(exc).__name__}"
            log.info("agent: the language model's answer was not used (%s); the rules decide", type(exc).__name__)
            return rules
        self.last_source = "model"
        return heard

    def _ask(self, text: str, local_now: datetime, memory: Memory) -> Heard:
        offered = ", ".join(f"{i}) {slot:%a %Y-%m-%d %H:%M}" for i, slot in enumerate(memory.offered_slots(), 1))
        prompt = _PROMPT.format(intents=", ".join(INTENTS), today=local_now.date().isoformat(),
                                weekday=f"{local_now:%A}", clock=f"{local_now:%H:%M}", offered=offered or "none")
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        response = self.session.post(self.url, timeout=self.timeout, headers=headers, json={
            "model": self.model, "temperature": 0, "response_format": {"type": "json_object"},
            "messages": [{"role": "system", "content": prompt}, {"role": "user", "content": text[:1000]}]})
        response.raise_for_status()
        content = response.json()["choices"][0]["message"]["content"]
        data = HeardSchema().load(json.loads(content))
        return _heard(data, local_now.date())


def _heard(data: dict, today: date) -> Heard:
    """A validated answer as a Heard; dates outside today..+60 days are refused."""
    first, last = data["day"], data["last_day"] or data["day"]
    for day in (first, last):
        if day is not None and not today <= day <= today + timedelta(days=60):
            raise ValueError("the model named a day outside the next 60 days")
    if first and last and last < first:
        raise ValueError("the model's range of days runs backwards")
    clock = {name: time.fromisoformat(data[name]) if data[name] else None for name in ("earliest", "latest", "exact")}
    when = When(first_day=first, last_day=last, **clock)
    if data["intent"] == EMERGENCY and not data["emergency"]:
        raise ValueError("an emergency without its kind")
    return Heard(intent=data["intent"], emergency=data["emergency"], choice=data["choice"],
                 when=None if when.is_empty else when, rejects=data["rejects"], asks_price=data["asks_price"],
                 mentions_job=data["mentions_job"])
