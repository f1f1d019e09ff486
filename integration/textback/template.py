"""The text message: safe placeholder rendering and SMS segment counting.

Templates are written by contractors and filled with data callers control (their name in the
CRM), so this is deliberately not a template engine: one regular-expression pass replaces the five
known placeholders and leaves every other brace literal. Nothing is evaluated, formatted with
str.format, or expanded twice, so "{__class__}", "{0.__init__}" or a contact named "{user_name}"
come out exactly as written.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULT_FALLBACKS",
    "PLACEHOLDERS",
    "SegmentInfo",
    "fit_to_segments",
    "render",
    "segment_info",
    "template_problems",
]

PLACEHOLDERS = ("first_name", "business_name", "user_name", "booking_link", "next_open_time")

# Used when a value is missing and the template gave no "|fallback" of its own, so the day-one
# template never reads "this is  at Acme".
DEFAULT_FALLBACKS: dict[str, str] = {
    "first_name": "there",
    "business_name": "our office",
    "user_name": "the team",
    "booking_link": "",
    "next_open_time": "soon",
}
# Caller-controlled values are bounded so a 5,000-character "name" cannot become a 30-part text.
_MAX_VALUE_LENGTH = {"first_name": 30, "business_name": 60, "user_name": 30, "booking_link": 200,
                     "next_open_time": 40}
_MAX_FALLBACK_LENGTH = 60
# Marks a placeholder that rendered empty; a control character, so no cleaned value can contain it.
_EMPTY = "\x00"

_PLACEHOLDER = re.compile(
    r"\{(" + "|".join(PLACEHOLDERS) + r")(?:\|([^{}\n]{0," + str(_MAX_FALLBACK_LENGTH) + r"}))?\}"
)
# Anything that looks like a placeholder, to point out typos such as {firstname} in the settings form.
_LOOKS_LIKE_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|[^{}\n]*)?\}")


def render(template: str, values: Mapping[str, str | None]) -> str:
    """Fill the known placeholders in one pass; missing values use the fallback after "|", else the default."""

    def replace(match: re.Match) -> str:
        name, fallback = match.group(1), match.group(2)
        value = _clean(values.get(name), limit=_MAX_VALUE_LENGTH[name])
        if not value:
            value = fallback.strip() if fallback is not None else DEFAULT_FALLBACKS[name]
        return value or _EMPTY

    body = _PLACEHOLDER.sub(replace, template.replace(_EMPTY, ""))
    # An empty value must not leave "Hi , ..." or a double space behind; only those spots are tidied.
    body = re.sub(" ?" + _EMPTY + "(?=[,.!?;:])", "", body)
    body = re.sub(_EMPTY + " ?", "", body)
    return body.strip()


def template_problems(template: str) -> list[str]:
    """What is wrong with a template a contractor typed: unknown placeholder names, stray braces."""
    problems = []
    known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
    for match in _LOOKS_LIKE_PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name not in PLACEHOLDERS:
            problems.append(f"unknown placeholder {{{name}}}; use one of {known}")
    for match in _PLACEHOLDER.finditer(template):
        if match.group(2) is not None and "|" in match.group(2):
            problems.append(f"placeholder {match.group(0)} has more than one fallback")
    return problems


def _clean(value: str | None, *, limit: int) -> str:
    """Printable, single-line, trimmed and bounded; control characters and line breaks dropped."""
    if value is None:
        return ""
    text = "".join(ch if not unicodedata.category(ch).startswith("C") else " " for ch in str(value))
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit].rstrip()
    return text


# --- Segments ---

# GSM 03.38 basic character set (one septet each) and its extension table (escape + char: two).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = set("^{}\\[~]|€\f")

GSM_SINGLE, GSM_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


@dataclass(frozen=True)
class SegmentInfo:
    """How a body travels: encoding ("GSM-7" or "UCS-2"), length in its units, and segment count."""

    encoding: str
    units: int
    segments: int


def segment_info(text: str) -> SegmentInfo:
    """Count SMS segments the way carriers split them.

    GSM-7: 160 septets in one segment, 153 per part when concatenated; an extension character
    (two septets) is never split across parts. UCS-2: 70 UTF-16 units, 67 per part; a surrogate
    pair (most emoji) is never split.
    """
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in text):
        costs = [2 if ch in _GSM_EXTENSION else 1 for ch in text]
        return SegmentInfo("GSM-7", sum(costs), _pack(costs, GSM_SINGLE, GSM_MULTI))
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SegmentInfo("UCS-2", sum(costs), _pack(costs, UCS2_SINGLE, UCS2_MULTI))


def _pack(costs: list[int], single: int, multi: int) -> int:
    total = sum(costs)
    if total == 0:
        return 0
    if total <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return segments


def fit_to_segments(text: str, max_segments: int) -> str:
    """`text` unchanged if it fits, else cut at a word boundary (with "...") so it does."""
    if segment_info(text).segments <= max_segments:
        return text
    words = text.split(" ")
    while len(words) > 1:
        words.pop()
        candidate = " ".join(words).rstrip(",;:-") + "..."
        if segment_info(candidate).segments <= max_segments:
            return candidate
    # A single enormous word: cut characters.
    candidate = text
    while candidate and segment_info(candidate + "...").segments > max_segments:
        candidate = candidate[:-1]
    return candidate + "..."
