"""Switchable faults for the API: what a flaky HighLevel does to a client.

Modes:
  "429"                   answer 429 Too Many Requests (with Retry-After) without acting.
  "500"                   answer 500 without acting.
  "html_error"            answer 502 with an HTML page (a gateway in front of HighLevel) without acting.
  "slow"                  wait `delay` seconds, then act and answer normally.
  "timeout_after_accept"  act (e.g. record and deliver the message), then hold the answer `delay`
                          seconds, beyond the client's timeout: the request took effect, the client
                          cannot know. This is what exactly-once sending must survive.
  "empty_body"            act, then answer with the normal status and an empty body.
  "hang"                  hold the request `delay` seconds, then answer 504 without acting: a request
                          HighLevel never took (a client that gives up first cannot tell it from a
                          timeout_after_accept).
  "409"                   answer 409 Conflict without acting (a booking that collides with another).
  "422"                   answer 422 with class-validator's message list without acting (a refused body).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

__all__ = ["FAULT_MODES", "FaultError", "FaultInjector", "FaultRule"]

FAULT_MODES = ("429", "500", "html_error", "slow", "timeout_after_accept", "empty_body", "hang", "409", "422")
# Faults that answer instead of the endpoint; the others let the endpoint run.
BLOCKING_MODES = frozenset({"429", "500", "html_error", "hang", "409", "422"})


class FaultError(ValueError):
    """A fault definition is malformed; the message says which field."""


@dataclass
class FaultRule:
    """One armed fault: matches requests by method and path regex, fires `times` times (None: forever)."""

    mode: str
    path: re.Pattern
    method: str | None
    times: int | None
    delay: float
    location_id: str | None = None
    fired: int = 0

    def to_dict(self) -> dict:
        return {"mode": self.mode, "path": self.path.pattern, "method": self.method, "times": self.times,
                "delay": self.delay, "locationId": self.location_id, "fired": self.fired}

    @classmethod
    def from_dict(cls, data: dict, *, default_delay: float) -> FaultRule:
        if not isinstance(data, dict):
            raise FaultError("a fault must be a JSON object")
        mode = str(data.get("mode", ""))
        if mode not in FAULT_MODES:
            raise FaultError(f"mode must be one of {', '.join(FAULT_MODES)}")
        try:
            path = re.compile(str(data.get("path") or ".*"))
        except re.error as exc:
            raise FaultError(f"path is not a valid regular expression: {exc}") from None
        method = data.get("method")
        if method is not None and (not isinstance(method, str) or not method.isalpha()):
            raise FaultError("method must be an HTTP method name")
        times = data.get("times", 1)
        if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
            raise FaultError("times must be a whole number >= 1, or null for every request")
        # For a 429, `delay` is the Retry-After it advertises; for slow answers, how long they take.
        delay = data.get("delay", 1.0 if mode == "429" else default_delay)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise FaultError("delay must be a number of seconds >= 0")
        location_id = data.get("locationId")
        if location_id is not None and not isinstance(location_id, str):
            raise FaultError("locationId must be a string")
        return cls(mode=mode, path=path, method=method.upper() if method else None, times=times,
                   delay=float(delay), location_id=location_id)


class FaultInjector:
    """Thread-safe list of armed faults; `take()` consumes one firing of the first matching rule."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict]:
        with self._lock:
            return [rule.to_dict() for rule in self._rules]

    def take(self, *, method: str, path: str, location_id: str | None = None) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.method and rule.method != method:
                    continue
                if rule.location_id and rule.location_id != location_id:
                    continue
                if not rule.path.search(path):
                    continue
                rule.fired += 1
                if rule.times is not None and rule.fired >= rule.times:
                    self._rules.remove(rule)
                return rule
        return None
