"""The sandbox's CRM data: agencies, sub-accounts, users, contacts, conversations, pipelines...

Records are plain dicts already in HighLevel's wire shape, so the API views mostly copy them out.
A World is mutated only under SandboxState.lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["World"]


@dataclass
class World:
    """Everything a simulated HighLevel account holds, keyed by id."""

    companies: dict[str, dict] = field(default_factory=dict)
    locations: dict[str, dict] = field(default_factory=dict)
    users: dict[str, dict] = field(default_factory=dict)
    contacts: dict[str, dict] = field(default_factory=dict)
    conversations: dict[str, dict] = field(default_factory=dict)
    # Messages per conversation id, oldest first.
    messages: dict[str, list[dict]] = field(default_factory=dict)
    pipelines: dict[str, dict] = field(default_factory=dict)
    opportunities: dict[str, dict] = field(default_factory=dict)
    calendars: dict[str, dict] = field(default_factory=dict)
    appointments: dict[str, dict] = field(default_factory=dict)
    notes: dict[str, dict] = field(default_factory=dict)
    tasks: dict[str, dict] = field(default_factory=dict)
    # What the app sent through POST /conversations/messages, with the numbers used (for tests).
    sent: list[dict] = field(default_factory=list)
    # contact id -> conversation id (one phone conversation per contact); keeps lookups O(1) under load.
    conversation_of_contact: dict[str, str] = field(default_factory=dict)

    def location_contacts(self, location_id: str) -> list[dict]:
        return [c for c in self.contacts.values() if c["locationId"] == location_id]

    def location_users(self, location_id: str) -> list[dict]:
        """The sub-account's own users (agency users reach every sub-account but are not its staff)."""
        return [u for u in self.users.values()
                if u["roles"]["type"] == "account" and location_id in u["roles"]["locationIds"]]

    def company_locations(self, company_id: str) -> list[dict]:
        return [loc for loc in self.locations.values() if loc["companyId"] == company_id]

    def conversation_for(self, location_id: str, contact_id: str) -> dict | None:
        conversation = self.conversations.get(self.conversation_of_contact.get(contact_id, ""))
        if conversation is None or conversation["locationId"] != location_id:
            return None
        return conversation

    def add_conversation(self, conversation: dict, messages: list[dict] | None = None) -> None:
        self.conversations[conversation["id"]] = conversation
        self.messages[conversation["id"]] = list(messages or [])
        self.conversation_of_contact[conversation["contactId"]] = conversation["id"]
