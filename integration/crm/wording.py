"""How the CRM follow-up names people and quotes replies in what it writes to HighLevel."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["contact_name", "excerpt", "first_name", "optional_text"]


def contact_name(contact: Mapping) -> str:
    """What HighLevel would show for the contact: its name, else its number."""
    name = str(contact.get("name") or "").strip() or " ".join(
        str(contact.get(part) or "").strip() for part in ("firstName", "lastName")).strip()
    return name or str(contact.get("phone") or "").strip() or "Unknown caller"


def first_name(contact: Mapping) -> str:
    """ "John" for the task title; the whole name or the number when there is no first name."""
    return str(contact.get("firstName") or "").strip() or contact_name(contact)


def excerpt(text: str | None, limit: int) -> str:
    """The text on one line, cut at `limit` characters with an ellipsis ("(no text)" for a picture alone)."""
    line = " ".join(str(text or "").split())
    if not line:
        return "(no text)"
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def optional_text(value: object) -> str | None:
    """An id or label from an API answer as a stripped string, None when absent or blank."""
    text = str(value).strip() if value is not None else ""
    return text or None
