"""The HighLevel API v2 client: one pooled session, a timeout on every call, typed errors, retries.

What every call gets (DESIGN §4.3-4.4, ghl-api-facts §0, §9, §11):
- the `Version` header its service expects (integration/ghl/versions.py);
- a bearer token from the injected TokenProvider; on a 401, one refresh through the provider and one
  retry;
- a slot from the shared per-location RedisRateLimiter before it leaves, and HighLevel's
  X-RateLimit-* headers fed back into it;
- 429 retried after `Retry-After` (or the burst interval, or exponential backoff with full jitter);
- timeouts, dropped connections and 5xx retried the same way, but only for idempotent calls. A
  create (send a message, add a note, open an opportunity...) that failed ambiguously is raised
  with `is_ambiguous=True`: the caller checks whether it took effect before trying again;
- an answer that is not the JSON object the method needs raises GHLBadResponse naming the problem.

Tokens and the client secret never appear in errors, logs or reprs.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError

from integration import metrics
from integration.ghl.errors import (
    GHLBadResponse,
    GHLConnectionError,
    GHLError,
    GHLRateLimited,
    GHLServerError,
    GHLTimeout,
    GHLValidationError,
    OAuthError,
    error_for_status,
)
from integration.ghl.ratelimit import RedisRateLimiter
from integration.ghl.tokens import TokenProvider
from integration.ghl.versions import version_for
from integration.logging_setup import redact

__all__ = ["GHLClient", "client_from_settings"]

log = logging.getLogger(__name__)

_DATE_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_MAX_PAGES = 1000  # a runaway paginator is a bug; stop long before it hurts


class GHLClient:
    """Client for the parts of HighLevel API v2 the product uses. Thread-safe; share one per process.

    Resource methods take the token's resource first: a location id, or a company id for agency calls.
    """

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        token_provider: TokenProvider | None = None,
        rate_limiter: RedisRateLimiter | None = None,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        sleep: Callable[[float], None] = time.sleep,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_retry_wait: float = 60.0,
        rate_limit_wait: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_provider = token_provider
        self.rate_limiter = rate_limiter
        self.session = session or _pooled_session()
        self.timeout = timeout
        self.max_retries = max_retries
        self._sleep = sleep
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        # A Retry-After longer than this is not slept through: the error goes to the caller (a job
        # can be rescheduled; a worker thread should not block for minutes).
        self.max_retry_wait = max_retry_wait
        self.rate_limit_wait = rate_limit_wait

    def __repr__(self) -> str:
        return f"GHLClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    # ------------------------------------------------------------------ OAuth (no bearer, form body)

    def exchange_code(self, code: str, *, redirect_uri: str | None = None, user_type: str | None = None) -> dict:
        """Exchange an authorization code for a token pair (`POST /oauth/token`, grant authorization_code).

        Returns HighLevel's answer as is (access_token, refresh_token, expires_in, userType, companyId,
        locationId...). A refused code raises OAuthError. Not retried after an ambiguous failure: a code
        is single-use.
        """
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "user_type": user_type}
        return self._token_request(form)

    def refresh_access_token(self, refresh_token: str, *, user_type: str) -> dict:
        """Trade a refresh token for a new pair (`POST /oauth/token`, grant refresh_token).

        The old refresh token is dead once HighLevel answers: persist the new pair before using it. Not
        retried after an ambiguous failure, for the same reason.
        """
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "user_type": user_type}
        return self._token_request(form)

    def _token_request(self, form: dict[str, str | None]) -> dict:
        body = {"client_id": self.client_id, "client_secret": self._client_secret, **form}
        answer = self._call("POST", "/oauth/token", form=body, idempotent=False)
        _require(answer, "access_token", str, "POST", "/oauth/token")
        return answer

    # ------------------------------------------------------------------ Agency

    def location_token(self, company_id: str, location_id: str) -> dict:
        """Mint a Location token from the agency's Company token (`POST /oauth/locationToken`).

        HighLevel answers 200 per the spec, 201 as measured; both are fine. Minting twice is harmless,
        so this call is retried like a read.
        """
        path = "/oauth/locationToken"
        answer = self._call("POST", path, resource_id=company_id, idempotent=True,
                            form={"companyId": company_id, "locationId": location_id})
        _require(answer, "access_token", str, "POST", path)
        return answer

    def installed_locations(self, company_id: str, *, app_id: str, is_installed: bool = True,
                            page_size: int = 100) -> list[dict]:
        """Every location of the company where the app is installed (`GET /oauth/installedLocations`), all pages.

        Each item has `_id` (not `id`), `name`, `address`, `isInstalled`.
        """
        path = "/oauth/installedLocations"
        locations: list[dict] = []
        for _ in range(_MAX_PAGES):
            params = {"companyId": company_id, "appId": app_id, "isInstalled": is_installed,
                      "skip": str(len(locations)), "limit": str(page_size)}
            answer = self._call("GET", path, resource_id=company_id, params=params)
            page = _require(answer, "locations", list, "GET", path)
            locations.extend(page)
            total = answer.get("count")
            if not page or len(page) < page_size or (isinstance(total, int) and len(locations) >= total):
                return locations
        raise GHLBadResponse(f"more than {_MAX_PAGES} pages of installed locations", method="GET", path=path,
                             is_ambiguous=False)

    # ------------------------------------------------------------------ Contacts

    def get_contact(self, location_id: str, contact_id: str) -> dict:
        """The contact object (`GET /contacts/{id}`)."""
        path = f"/contacts/{_seg(contact_id)}"
        answer = self._call("GET", path, resource_id=location_id)
        return _require(answer, "contact", dict, "GET", path)

    def find_contact_by_phone(self, location_id: str, phone: str) -> dict | None:
        """The contact with this phone number, or None (`GET /contacts/search/duplicate`).

        HighLevel answers `{"contact": null}` on a miss (the spec has no schema); `{}` is read the same way.
        """
        path = "/contacts/search/duplicate"
        answer = self._call("GET", path, resource_id=location_id, params={"locationId": location_id, "number": phone})
        contact = answer.get("contact")
        if contact is None:
            return None
        if not isinstance(contact, dict):
            raise GHLBadResponse(f"'contact' is a {type(contact).__name__}, expected an object or null",
                                 method="GET", path=path, status=200, is_ambiguous=False)
        return contact

    def upsert_contact(self, location_id: str, *, phone: str, first_name: str | None = None,
                       last_name: str | None = None, email: str | None = None) -> dict:
        """The location's contact with this phone, created when there is none (`POST /contacts/upsert`)."""
        path = "/contacts/upsert"
        payload = _compact({"locationId": location_id, "phone": phone, "firstName": first_name,
                            "lastName": last_name, "email": email})
        answer = self._call("POST", path, resource_id=location_id, json_body=payload)
        return _require(answer, "contact", dict, "POST", path)

    def update_contact(self, location_id: str, contact_id: str, fields: Mapping[str, Any]) -> dict:
        """Update contact fields (`PUT /contacts/{id}`); returns the updated contact.

        Note that HighLevel replaces the whole tag list when `tags` is given: use add_tags/remove_tags.
        """
        path = f"/contacts/{_seg(contact_id)}"
        answer = self._call("PUT", path, resource_id=location_id, json_body=dict(fields))
        return _require(answer, "contact", dict, "PUT", path)

    def set_sms_dnd(self, location_id: str, contact_id: str, active: bool, message: str | None = None) -> dict:
        """Turn SMS do-not-disturb on or off for a contact (STOP / START); other channels are untouched."""
        sms: dict[str, Any] = {"status": "active" if active else "inactive"}
        if message:
            sms["message"] = message
        return self.update_contact(location_id, contact_id, {"dndSettings": {"SMS": sms}})

    def add_tags(self, location_id: str, contact_id: str, tags: Iterable[str]) -> list[str]:
        """Add tags (`POST /contacts/{id}/tags`); returns the contact's tags. Adding a tag twice is harmless."""
        path = f"/contacts/{_seg(contact_id)}/tags"
        answer = self._call("POST", path, resource_id=location_id, json_body={"tags": list(tags)})
        return _require(answer, "tags", list, "POST", path)

    def remove_tags(self, location_id: str, contact_id: str, tags: Iterable[str]) -> list[str]:
        """Remove tags (`DELETE /contacts/{id}/tags`, JSON body); returns the contact's remaining tags."""
        path = f"/contacts/{_seg(contact_id)}/tags"
        answer = self._call("DELETE", path, resource_id=location_id, json_body={"tags": list(tags)})
        return _require(answer, "tags", list, "DELETE", path)

    def add_note(self, location_id: str, contact_id: str, body: str, *, user_id: str | None = None) -> dict:
        """Add a note to the contact (`POST /contacts/{id}/notes`); returns the note. Not retried when ambiguous."""
        path = f"/contacts/{_seg(contact_id)}/notes"
        answer = self._call("POST", path, resource_id=location_id, idempotent=False,
                            json_body=_compact({"body": body, "userId": user_id}))
        return _require(answer, "note", dict, "POST", path)

    def list_notes(self, location_id: str, contact_id: str) -> list[dict]:
        """The contact's notes (`GET /contacts/{id}/notes`): how a note whose create failed ambiguously is found."""
        path = f"/contacts/{_seg(contact_id)}/notes"
        answer = self._call("GET", path, resource_id=location_id)
        return _require(answer, "notes", list, "GET", path)

    def list_tasks(self, location_id: str, contact_id: str) -> list[dict]:
        """The contact's tasks (`GET /contacts/{id}/tasks`): how a task whose create failed ambiguously is found."""
        path = f"/contacts/{_seg(contact_id)}/tasks"
        answer = self._call("GET", path, resource_id=location_id)
        return _require(answer, "tasks", list, "GET", path)

    def create_task(self, location_id: str, contact_id: str, *, title: str, due_date: datetime,
                    body: str | None = None, assigned_to: str | None = None) -> dict:
        """Create a task on the contact (`POST /contacts/{id}/tasks`); returns the task. Not retried when ambiguous."""
        path = f"/contacts/{_seg(contact_id)}/tasks"
        payload = _compact({"title": title, "body": body, "dueDate": _iso(due_date, "due_date"),
                            "completed": False, "assignedTo": assigned_to})
        answer = self._call("POST", path, resource_id=location_id, idempotent=False, json_body=payload)
        return _require(answer, "task", dict, "POST", path)

    # ------------------------------------------------------------------ Conversations

    def send_message(self, location_id: str, *, contact_id: str, message: str, message_type: str = "SMS",
                     from_number: str | None = None, to_number: str | None = None) -> dict:
        """Send a message (`POST /conversations/messages`); returns `{conversationId, messageId, ...}`.

        Never retried after an ambiguous failure (timeout, dropped connection, 5xx): the error has
        `is_ambiguous=True` and the exactly-once sender checks the conversation before sending again.
        A 429 is retried: HighLevel did not process the request.
        """
        path = "/conversations/messages"
        payload = _compact({"type": message_type, "contactId": contact_id, "message": message,
                            "fromNumber": from_number, "toNumber": to_number})
        answer = self._call("POST", path, resource_id=location_id, idempotent=False, json_body=payload)
        _require(answer, "conversationId", str, "POST", path)
        _require(answer, "messageId", str, "POST", path)
        return answer

    def search_conversations(self, location_id: str, *, contact_id: str | None = None, limit: int = 20,
                             **filters: Any) -> list[dict]:
        """Conversations of the location (`GET /conversations/search`); `filters` are the API's query names
        (e.g. `lastMessageType="TYPE_CALL"`, `sort="desc"`)."""
        path = "/conversations/search"
        params = {"locationId": location_id, "contactId": contact_id, "limit": limit, **filters}
        answer = self._call("GET", path, resource_id=location_id, params=params)
        return _require(answer, "conversations", list, "GET", path)

    def list_messages(self, location_id: str, conversation_id: str, *, limit: int = 20,
                      last_message_id: str | None = None, types: Iterable[str] | None = None) -> list[dict]:
        """Messages of a conversation, newest first (`GET /conversations/{id}/messages`).

        Accepts the spec's flat `{"messages": [...]}` and the nested `{"messages": {"messages": [...]}}`
        that real clients read (ghl-api-facts §3.3).
        """
        path = f"/conversations/{_seg(conversation_id)}/messages"
        params = {"limit": limit, "lastMessageId": last_message_id, "type": ",".join(types) if types else None}
        answer = self._call("GET", path, resource_id=location_id, params=params)
        messages = answer.get("messages")
        if isinstance(messages, dict):
            messages = messages.get("messages")
        if not isinstance(messages, list):
            raise GHLBadResponse("the answer has no 'messages' list (flat or nested)", method="GET", path=path,
                                 status=200, is_ambiguous=False)
        return messages

    # ------------------------------------------------------------------ Opportunities

    def get_pipelines(self, location_id: str) -> list[dict]:
        """The location's pipelines with their stages (`GET /opportunities/pipelines`)."""
        path = "/opportunities/pipelines"
        answer = self._call("GET", path, resource_id=location_id, params={"locationId": location_id})
        return _require(answer, "pipelines", list, "GET", path)

    def search_opportunities(self, location_id: str, *, contact_id: str | None = None,
                             pipeline_id: str | None = None, status: str | None = None,
                             limit: int = 20) -> list[dict]:
        """Opportunities matching the filters (`GET /opportunities/search`; its query names are snake_case)."""
        path = "/opportunities/search"
        params = {"location_id": location_id, "contact_id": contact_id, "pipeline_id": pipeline_id,
                  "status": status, "limit": limit}
        answer = self._call("GET", path, resource_id=location_id, params=params)
        return _require(answer, "opportunities", list, "GET", path)

    def create_opportunity(self, location_id: str, *, pipeline_id: str, name: str, contact_id: str,
                           status: str = "open", pipeline_stage_id: str | None = None,
                           monetary_value: float | None = None, assigned_to: str | None = None) -> dict:
        """Open an opportunity (`POST /opportunities/`); returns it. Not retried when ambiguous."""
        path = "/opportunities/"
        payload = _compact({"pipelineId": pipeline_id, "locationId": location_id, "name": name, "status": status,
                            "contactId": contact_id, "pipelineStageId": pipeline_stage_id,
                            "monetaryValue": monetary_value, "assignedTo": assigned_to})
        answer = self._call("POST", path, resource_id=location_id, idempotent=False, json_body=payload)
        return _require(answer, "opportunity", dict, "POST", path)

    def update_opportunity(self, location_id: str, opportunity_id: str, **fields: Any) -> dict:
        """Update an opportunity (`PUT /opportunities/{id}`); returns it.

        Field names may be the API's (`pipelineStageId`) or snake_case (`pipeline_stage_id`).
        """
        path = f"/opportunities/{_seg(opportunity_id)}"
        payload = {_camel(key): value for key, value in fields.items()}
        answer = self._call("PUT", path, resource_id=location_id, json_body=payload)
        return _require(answer, "opportunity", dict, "PUT", path)

    def update_opportunity_status(self, location_id: str, opportunity_id: str, status: str) -> None:
        """Set an opportunity's status: open, won, lost or abandoned (`PUT /opportunities/{id}/status`)."""
        path = f"/opportunities/{_seg(opportunity_id)}/status"
        self._call("PUT", path, resource_id=location_id, json_body={"status": status}, allow_empty=True)

    # ------------------------------------------------------------------ Calendars

    def list_calendars(self, location_id: str) -> list[dict]:
        """The location's calendars (`GET /calendars/`)."""
        path = "/calendars/"
        answer = self._call("GET", path, resource_id=location_id, params={"locationId": location_id})
        return _require(answer, "calendars", list, "GET", path)

    def free_slots(self, location_id: str, calendar_id: str, *, start: datetime, end: datetime,
                   timezone: str | None = None) -> dict[str, list[str]]:
        """Free slots between two aware datetimes (`GET /calendars/{id}/free-slots`).

        Returns `{"YYYY-MM-DD": ["<ISO slot start>", ...]}`; non-date keys (traceId) are skipped.
        """
        path = f"/calendars/{_seg(calendar_id)}/free-slots"
        params = {"startDate": _epoch_ms(start, "start"), "endDate": _epoch_ms(end, "end"), "timezone": timezone}
        answer = self._call("GET", path, resource_id=location_id, params=params)
        slots: dict[str, list[str]] = {}
        for key, value in answer.items():
            if not _DATE_KEY.match(key):
                continue
            day = value.get("slots") if isinstance(value, dict) else None
            if not isinstance(day, list):
                raise GHLBadResponse(f"free slots for {key} have no 'slots' list", method="GET", path=path,
                                     status=200, is_ambiguous=False)
            slots[key] = day
        return slots

    def create_appointment(self, location_id: str, *, calendar_id: str, contact_id: str, start_time: datetime,
                           end_time: datetime | None = None, title: str | None = None,
                           assigned_user_id: str | None = None) -> dict:
        """Book an appointment (`POST /calendars/events/appointments`); returns it. Not retried when ambiguous."""
        path = "/calendars/events/appointments"
        payload = _compact({
            "calendarId": calendar_id, "locationId": location_id, "contactId": contact_id,
            "startTime": _iso(start_time, "start_time"),
            "endTime": _iso(end_time, "end_time") if end_time is not None else None,
            "title": title, "assignedUserId": assigned_user_id,
        })
        answer = self._call("POST", path, resource_id=location_id, idempotent=False, json_body=payload)
        _require(answer, "id", str, "POST", path)
        return answer

    # ------------------------------------------------------------------ Locations and users

    def get_location(self, location_id: str) -> dict:
        """The sub-account (`GET /locations/{id}`): name, phone, timezone, business..."""
        path = f"/locations/{_seg(location_id)}"
        answer = self._call("GET", path, resource_id=location_id)
        return _require(answer, "location", dict, "GET", path)

    def list_users(self, location_id: str) -> list[dict]:
        """The location's users (`GET /users/`, Location token)."""
        path = "/users/"
        answer = self._call("GET", path, resource_id=location_id, params={"locationId": location_id})
        return _require(answer, "users", list, "GET", path)

    def search_users(self, company_id: str, *, location_id: str | None = None, limit: int = 100) -> list[dict]:
        """Users of the agency, optionally of one location (`GET /users/search`, Company token)."""
        path = "/users/search"
        params = {"companyId": company_id, "locationId": location_id, "limit": str(limit)}
        answer = self._call("GET", path, resource_id=company_id, params=params)
        return _require(answer, "users", list, "GET", path)

    # ------------------------------------------------------------------ the request loop

    def _call(self, method: str, path: str, *, resource_id: str | None = None,
              params: Mapping[str, Any] | None = None, json_body: Any = None,
              form: Mapping[str, Any] | None = None, idempotent: bool | None = None,
              allow_empty: bool = False) -> dict:
        """Send one logical request (with its retries) and return the JSON object HighLevel answered.

        `resource_id` set means a bearer call for that resource (and a rate-limiter slot). `idempotent`
        defaults to True for every method but POST.
        """
        if idempotent is None:
            idempotent = method != "POST"
        url = self.base_url + path
        headers = {"Accept": "application/json"}
        version = version_for(path)
        if version:
            headers["Version"] = version
        query = _query(params)
        data = _compact(form) if form is not None else None

        token = None
        if resource_id is not None:
            if self.token_provider is None:
                raise GHLError("no token provider configured for resource calls", method=method, path=path,
                               is_ambiguous=False)
            token = self.token_provider.access_token(resource_id)

        refreshed = False
        retries = 0
        while True:
            if resource_id is not None and self.rate_limiter is not None:
                try:
                    self.rate_limiter.acquire(resource_id, max_wait=self.rate_limit_wait)
                except GHLRateLimited as exc:
                    exc.method, exc.path = method, path
                    raise
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            response, error = self._send(method, url, path, headers=headers, params=query, json_body=json_body,
                                         data=data)
            if response is not None:
                if resource_id is not None and self.rate_limiter is not None:
                    self.rate_limiter.observe(resource_id, response.headers)
                if response.status_code == 401 and token is not None and not refreshed:
                    # Expired or revoked token: one refresh through the provider, then one retry.
                    refreshed = True
                    log.info("ghl %s %s: 401, refreshing the token for %s once", method, path, resource_id)
                    token = self.token_provider.refresh_after_unauthorized(resource_id, token)
                    continue
                if 200 <= response.status_code < 300:
                    return _parse_success(response, method, path, allow_empty=allow_empty)
                error = _error_from_response(response, method, path, oauth=path == "/oauth/token")
                if (isinstance(error, GHLRateLimited) and error.retry_after and resource_id is not None
                        and self.rate_limiter is not None):
                    # Tell every process: nobody should spend requests on this resource until then.
                    self.rate_limiter.block(resource_id, error.retry_after)

            assert error is not None
            if retries >= self.max_retries or not _retryable(error, idempotent):
                raise error
            delay = self._retry_delay(error, response, retries)
            if delay > self.max_retry_wait:
                raise error
            retries += 1
            log.warning("ghl %s %s failed (%s); retry %d/%d in %.2fs", method, path,
                        type(error).__name__ if error.status is None else error.status,
                        retries, self.max_retries, delay)
            self._sleep(delay)

    def _send(self, method: str, url: str, path: str, *, headers: dict, params: list | None, json_body: Any,
              data: dict | None) -> tuple[requests.Response | None, GHLError | None]:
        started = time.perf_counter()
        try:
            response = self.session.request(method, url, headers=headers, params=params, json=json_body, data=data,
                                            timeout=self.timeout)
            # Read the body inside the timeout handling: a server that sends headers and stalls is a timeout.
            _ = response.content
            metrics.ghl_request(method, path, response.status_code, started)
            return response, None
        except requests.Timeout as exc:
            metrics.ghl_request(method, path, "timeout", started)
            # A connect timeout means the request never left: safe to retry even for a create.
            never_sent = isinstance(exc, requests.ConnectTimeout)
            return None, GHLTimeout(f"no answer within {self.timeout:g}s"
                                    + (" (could not connect)" if never_sent else ""),
                                    method=method, path=path, is_ambiguous=not never_sent)
        except requests.ConnectionError as exc:
            metrics.ghl_request(method, path, "connection_error", started)
            never_sent = _never_connected(exc)
            reason = "could not connect" if never_sent else "connection lost before an answer"
            return None, GHLConnectionError(f"{reason} ({_root_cause(exc)})", method=method, path=path,
                                            is_ambiguous=not never_sent)

    def _retry_delay(self, error: GHLError, response: requests.Response | None, retries: int) -> float:
        """Seconds to wait: HighLevel's Retry-After, else its burst interval on a 429, else backoff with full jitter."""
        if isinstance(error, GHLRateLimited):
            if error.retry_after is not None:
                return error.retry_after + random.uniform(0, min(1.0, 0.1 * error.retry_after))
            interval = _header_float(response, "X-RateLimit-Interval-Milliseconds") if response is not None else None
            if interval is not None:
                return interval / 1000.0 + random.uniform(0, 0.5)
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * (2 ** retries)))


# ---------------------------------------------------------------------- helpers (module level: no state)


def client_from_settings(settings, *, token_provider: TokenProvider | None = None, redis=None) -> GHLClient:
    """A client configured from Settings; with `redis`, a shared rate limiter at the configured limit."""
    limiter = (RedisRateLimiter(redis, limit=settings.ghl_rate_limit, window=settings.ghl_rate_window)
               if redis is not None else None)
    return GHLClient(
        base_url=settings.ghl_api_base,
        client_id=settings.ghl_client_id,
        client_secret=settings.ghl_client_secret,
        token_provider=token_provider,
        rate_limiter=limiter,
        timeout=settings.ghl_timeout,
        max_retries=settings.ghl_max_retries,
    )


def _pooled_session() -> requests.Session:
    session = requests.Session()
    # Retries are ours (they need the idempotency rule); urllib3's own are switched off.
    adapter = HTTPAdapter(pool_connections=10, pool_maxsize=32, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _retryable(error: GHLError, idempotent: bool) -> bool:
    if isinstance(error, GHLRateLimited):
        return True  # HighLevel processed nothing
    if isinstance(error, (GHLServerError, GHLTimeout, GHLConnectionError)):
        return idempotent or not error.is_ambiguous
    return False


def _never_connected(exc: requests.ConnectionError) -> bool:
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, NewConnectionError)


def _root_cause(exc: requests.ConnectionError) -> str:
    """A short, secret-free name for a low-level failure (e.g. ConnectionResetError), never the URL."""
    cause: object = exc.args[0] if exc.args else exc
    if isinstance(cause, MaxRetryError) and cause.reason is not None:
        cause = cause.reason
    # urllib3's ProtocolError("Connection aborted.", ConnectionResetError(...)) keeps the OS error last.
    if isinstance(cause, Exception) and len(cause.args) > 1 and isinstance(cause.args[-1], BaseException):
        cause = cause.args[-1]
    return type(cause).__name__


def _header_float(response: requests.Response, name: str) -> float | None:
    raw = response.headers.get(name)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), else the burst interval when nothing is left."""
    raw = response.headers.get("Retry-After")
    if raw:
        raw = raw.strip()
        try:
            return max(0.0, float(raw))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                when = None
            if when is not None and when.tzinfo is not None:
                return max(0.0, when.timestamp() - time.time())
    if response.headers.get("X-RateLimit-Remaining") == "0":
        interval = _header_float(response, "X-RateLimit-Interval-Milliseconds")
        if interval is not None:
            return interval / 1000.0
    return None


def _read_json(response: requests.Response) -> tuple[Any, str | None]:
    """(payload, None) or (None, a sentence naming what is wrong with the body)."""
    content_type = response.headers.get("Content-Type", "")
    raw = response.content or b""
    if not raw.strip():
        return None, "empty body"
    text = raw.decode("utf-8", errors="replace")
    if "html" in content_type.lower() or text.lstrip()[:1] == "<":
        title = _HTML_TITLE.search(text)
        hint = f" ({' '.join(title.group(1).split())[:80]})" if title else ""
        return None, f"an HTML page instead of JSON{hint}"
    try:
        return json.loads(text), None
    except ValueError:
        return None, f"a body that is not JSON (Content-Type {content_type or 'missing'!r}, {len(raw)} bytes)"


def _parse_success(response: requests.Response, method: str, path: str, *, allow_empty: bool) -> dict:
    if allow_empty and not (response.content or b"").strip():
        return {}
    payload, problem = _read_json(response)
    if problem is None and not isinstance(payload, dict):
        problem = f"a JSON {type(payload).__name__} instead of an object"
    if problem is not None:
        # Unreadable after a create: it did happen, but we cannot know the ids (ambiguous for the sender).
        raise GHLBadResponse(f"HighLevel answered {response.status_code} with {problem}",
                             status=response.status_code, method=method, path=path,
                             trace_id=response.headers.get("traceId"), is_ambiguous=method == "POST")
    return payload


def _error_from_response(response: requests.Response, method: str, path: str, *, oauth: bool) -> GHLError:
    status = response.status_code
    payload, problem = _read_json(response)
    body = payload if isinstance(payload, dict) else {}
    trace_id = body.get("traceId") or response.headers.get("traceId")
    trace_id = trace_id if isinstance(trace_id, str) else None
    raw_message = body.get("message")
    messages = [str(m) for m in raw_message] if isinstance(raw_message, list) else []
    if isinstance(raw_message, str):
        messages = [raw_message]
    description = body.get("error_description")
    if not messages and isinstance(description, str):
        messages = [description]
    if not messages and isinstance(body.get("error"), str):
        messages = [body["error"]]
    if messages:
        message = redact("; ".join(messages))
    elif problem is not None:
        message = f"{response.reason or 'error'}: HighLevel answered with {problem}"
    else:
        message = response.reason or f"HTTP {status}"
    common = {"status": status, "method": method, "path": path, "trace_id": trace_id}

    if oauth and status < 500 and status != 429:
        error_code = body.get("error")
        return OAuthError(message, error=error_code if isinstance(error_code, str) else None,
                          error_description=redact(description) if isinstance(description, str) else None, **common)
    cls = error_for_status(status)
    if cls is GHLRateLimited:
        return GHLRateLimited(message, retry_after=_retry_after(response), **common)
    if cls is GHLValidationError:
        return GHLValidationError(message, errors=[redact(m) for m in messages] or None, **common)
    return cls(message, **common)


def _require(answer: dict, key: str, kind: type, method: str, path: str):
    value = answer.get(key)
    if not isinstance(value, kind):
        found = "missing" if key not in answer else f"a {type(value).__name__}"
        raise GHLBadResponse(f"the answer's '{key}' is {found}, expected {_kind_name(kind)}",
                             status=200, method=method, path=path, is_ambiguous=method == "POST")
    return value


def _kind_name(kind: type) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(kind, kind.__name__)


def _compact(mapping: Mapping[str, Any]) -> dict:
    """Drop None values: HighLevel treats an explicit null differently from an absent field."""
    return {key: value for key, value in mapping.items() if value is not None}


def _query(params: Mapping[str, Any] | None) -> list[tuple[str, str]] | None:
    """Query parameters as strings, booleans as true/false (requests would send True/False)."""
    if params is None:
        return None
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        pairs.append((key, str(value)))
    return pairs


def _seg(value: str) -> str:
    """One path segment: ids come from webhooks and must not be able to change the path."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"an id must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value


def _iso(value: datetime, name: str) -> str:
    return _aware(value, name).isoformat()


def _epoch_ms(value: datetime, name: str) -> int:
    return int(_aware(value, name).timestamp() * 1000)
