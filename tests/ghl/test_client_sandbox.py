"""Every client method against the sandbox over real HTTP, each exchange validated against the official specs.

The `contract_recorder` hooks the client's session: every request the client sends and every answer it
parses in these tests is checked against integration/ghl/openapi at teardown (path, method, Version,
bearer, parameters, body schema; documented status and answer schema).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from integration.config import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from integration.ghl import (
    GHLBadResponse,
    GHLClient,
    GHLNotFound,
    GHLRateLimited,
    GHLServerError,
    GHLTimeout,
    OAuthError,
    RedisRateLimiter,
)
from integration.sandbox.seed import (
    SEED_CALENDAR_IDS,
    SEED_COMPANY_ID,
    SEED_CONTACT_IDS,
    SEED_LOCATION_IDS,
    SEED_MISSED_CALL_PIPELINE_IDS,
    SEED_USER_IDS,
    stage_id,
)

ACME = SEED_LOCATION_IDS[0]
APP_ID = SANDBOX_CLIENT_ID.split("-", 1)[0]
CALLER = "+15125550177"  # not a seed contact


class SandboxTokens:
    """A TokenProvider over token pairs from the sandbox, refreshing through the client under test.

    Refresh tokens are single-use: the pair is replaced as a whole, under a lock, like the real store.
    """

    def __init__(self) -> None:
        self.pairs: dict[str, dict] = {}
        self.client: GHLClient | None = None
        self.refreshes = 0
        self._lock = threading.Lock()

    def add(self, resource_id: str, answer: dict) -> None:
        self.pairs[resource_id] = answer

    def access_token(self, resource_id: str) -> str:
        return self.pairs[resource_id]["access_token"]

    def refresh_after_unauthorized(self, resource_id: str, rejected_token: str) -> str:
        with self._lock:
            pair = self.pairs[resource_id]
            if pair["access_token"] != rejected_token:
                return pair["access_token"]
            self.pairs[resource_id] = self.client.refresh_access_token(pair["refresh_token"],
                                                                       user_type=pair["userType"])
            self.refreshes += 1
            return self.pairs[resource_id]["access_token"]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def tokens(sandbox) -> SandboxTokens:
    provider = SandboxTokens()
    provider.add(ACME, sandbox.tokens(ACME))
    return provider


@pytest.fixture
def ghl(sandbox, contract_recorder, tokens, sleeps) -> GHLClient:
    client = GHLClient(base_url=sandbox.url, client_id=SANDBOX_CLIENT_ID, client_secret=SANDBOX_CLIENT_SECRET,
                       token_provider=tokens, timeout=5.0, sleep=sleeps.append)
    contract_recorder.attach(client.session)  # the client's own pooled session, hooked
    tokens.client = client
    return client


@pytest.fixture
def agency(sandbox, tokens) -> dict:
    """A bulk (agency) install: a Company token for the seed agency."""
    answer = sandbox.tokens(bulk=True)
    assert answer["userType"] == "Company"
    tokens.add(SEED_COMPANY_ID, answer)
    return answer


# ---------------------------------------------------------------- OAuth


def test_exchange_code_and_refresh_rotate_single_use_tokens(sandbox, ghl):
    first = ghl.exchange_code(sandbox.authorize(ACME), redirect_uri="http://localhost:5000/oauth/callback",
                              user_type="Location")
    assert first["userType"] == "Location" and first["locationId"] == ACME

    second = ghl.refresh_access_token(first["refresh_token"], user_type="Location")
    assert second["refresh_token"] != first["refresh_token"]

    with pytest.raises(OAuthError) as reused:
        ghl.refresh_access_token(first["refresh_token"], user_type="Location")
    assert reused.value.status in (400, 401)
    assert first["refresh_token"] not in str(reused.value)


def test_a_used_code_is_an_oauth_error(sandbox, ghl):
    code = sandbox.authorize(ACME)
    ghl.exchange_code(code)
    with pytest.raises(OAuthError):
        ghl.exchange_code(code)


# ---------------------------------------------------------------- agency


def test_installed_locations_and_location_token(ghl, agency, tokens, contract_recorder):
    installed = ghl.installed_locations(SEED_COMPANY_ID, app_id=APP_ID, page_size=2)
    assert {location["_id"] for location in installed} == set(SEED_LOCATION_IDS)
    assert len(contract_recorder.validated("GET", "/oauth/installedLocations")) == 2  # two pages

    minted = ghl.location_token(SEED_COMPANY_ID, SEED_LOCATION_IDS[1])
    tokens.add(SEED_LOCATION_IDS[1], minted)
    assert ghl.get_location(SEED_LOCATION_IDS[1])["id"] == SEED_LOCATION_IDS[1]


def test_search_users_with_the_company_token(ghl, agency):
    users = ghl.search_users(SEED_COMPANY_ID, location_id=ACME)
    assert set(SEED_USER_IDS[ACME]) <= {user["id"] for user in users}


# ---------------------------------------------------------------- contacts


def test_contact_reads_and_updates(ghl):
    contact_id = SEED_CONTACT_IDS[ACME][0]
    contact = ghl.get_contact(ACME, contact_id)
    assert contact["id"] == contact_id

    assert ghl.find_contact_by_phone(ACME, contact["phone"])["id"] == contact_id
    assert ghl.find_contact_by_phone(ACME, CALLER) is None

    assert ghl.update_contact(ACME, contact_id, {"firstName": "Danielle"})["firstName"] == "Danielle"
    assert ghl.set_sms_dnd(ACME, contact_id, True, message="STOP")["dndSettings"]["SMS"]["status"] == "active"
    assert ghl.set_sms_dnd(ACME, contact_id, False)["dndSettings"]["SMS"]["status"] == "inactive"

    assert {"missed-call", "textback"} <= set(ghl.add_tags(ACME, contact_id, ["missed-call", "textback"]))
    remaining = ghl.remove_tags(ACME, contact_id, ["textback"])
    assert "missed-call" in remaining and "textback" not in remaining


def test_notes_and_tasks(ghl):
    contact_id = SEED_CONTACT_IDS[ACME][0]
    note = ghl.add_note(ACME, contact_id, "Missed call at 9:14, texted back.", user_id=SEED_USER_IDS[ACME][0])
    assert note["body"] == "Missed call at 9:14, texted back."

    due = datetime.now(UTC) + timedelta(hours=2)
    task = ghl.create_task(ACME, contact_id, title="Call Dana back", due_date=due, body="Asked about a leak",
                           assigned_to=SEED_USER_IDS[ACME][1])
    assert task["title"] == "Call Dana back"


def test_unknown_contact_is_not_found(ghl):
    with pytest.raises(GHLNotFound) as caught:
        ghl.get_contact(ACME, "NoSuchContact0000000")
    assert caught.value.message


# ---------------------------------------------------------------- conversations


def test_send_message_then_find_it_in_the_conversation(sandbox, ghl):
    contact_id = SEED_CONTACT_IDS[ACME][1]
    sent = ghl.send_message(ACME, contact_id=contact_id, message="Sorry we missed you! How can we help?")

    conversations = ghl.search_conversations(ACME, contact_id=contact_id)
    assert sent["conversationId"] in {c["id"] for c in conversations}

    messages = ghl.list_messages(ACME, sent["conversationId"], limit=10, types=["TYPE_SMS"])
    assert sent["messageId"] in {m["id"] for m in messages}
    assert len(sandbox.sent_messages(locationId=ACME, contactId=contact_id)) == 1


# ---------------------------------------------------------------- opportunities


def test_opportunity_lifecycle(ghl):
    contact_id = SEED_CONTACT_IDS[ACME][1]
    pipelines = ghl.get_pipelines(ACME)
    pipeline_id = SEED_MISSED_CALL_PIPELINE_IDS[ACME]
    assert pipeline_id in {p["id"] for p in pipelines}

    created = ghl.create_opportunity(ACME, pipeline_id=pipeline_id, name="Missed call: Luis Ortega",
                                     contact_id=contact_id, pipeline_stage_id=stage_id(pipeline_id, "New Lead"),
                                     monetary_value=350)
    found = ghl.search_opportunities(ACME, contact_id=contact_id, pipeline_id=pipeline_id, status="open")
    assert created["id"] in {o["id"] for o in found}

    moved = ghl.update_opportunity(ACME, created["id"], pipeline_stage_id=stage_id(pipeline_id, "Replied"))
    assert moved["pipelineStageId"] == stage_id(pipeline_id, "Replied")
    assert ghl.update_opportunity_status(ACME, created["id"], "won") is None
    assert ghl.search_opportunities(ACME, contact_id=contact_id, status="won")[0]["id"] == created["id"]


# ---------------------------------------------------------------- calendars, location, users


def test_calendar_slots_and_booking(ghl):
    calendars = ghl.list_calendars(ACME)
    calendar_id = SEED_CALENDAR_IDS[ACME]
    assert calendar_id in {c["id"] for c in calendars}

    start = datetime.now(UTC)
    slots = ghl.free_slots(ACME, calendar_id, start=start, end=start + timedelta(days=7), timezone="America/Chicago")
    first = datetime.fromisoformat(next(iter(slots.values()))[0])

    booked = ghl.create_appointment(ACME, calendar_id=calendar_id, contact_id=SEED_CONTACT_IDS[ACME][0],
                                    start_time=first, end_time=first + timedelta(minutes=30),
                                    title="Leak inspection", assigned_user_id=SEED_USER_IDS[ACME][0])
    assert booked["calendarId"] == calendar_id


def test_location_and_users(ghl):
    location = ghl.get_location(ACME)
    assert location["name"] == "Acme Plumbing" and location["timezone"] == "America/Chicago"
    assert set(SEED_USER_IDS[ACME]) == {user["id"] for user in ghl.list_users(ACME)}


# ---------------------------------------------------------------- 401 -> refresh -> retry, for real


def test_expired_token_is_refreshed_once_and_the_call_retried(sandbox, ghl, tokens):
    sandbox.control("POST", "tokens/expire", json={"resourceId": ACME})

    assert ghl.get_location(ACME)["id"] == ACME

    assert tokens.refreshes == 1
    grants = [r.get("grant_type") for r in sandbox.requests_log(path="^/oauth/token")]
    assert grants.count("refresh_token") == 1


# ---------------------------------------------------------------- faults


def test_429_is_retried_and_the_message_goes_out_once(sandbox, ghl, sleeps):
    sandbox.fault("429", "^/conversations/messages$", method="POST", times=1)
    contact_id = SEED_CONTACT_IDS[ACME][1]

    ghl.send_message(ACME, contact_id=contact_id, message="Sorry we missed you")

    assert len(sleeps) == 1
    assert len(sandbox.sent_messages(locationId=ACME, contactId=contact_id)) == 1


def test_a_send_accepted_then_timed_out_is_ambiguous_and_not_repeated(sandbox, ghl, sleeps):
    sandbox.fault("timeout_after_accept", "^/conversations/messages$", method="POST", times=1, delay=2.0)
    ghl.timeout = 0.5
    contact_id = SEED_CONTACT_IDS[ACME][1]

    with pytest.raises(GHLTimeout) as caught:
        ghl.send_message(ACME, contact_id=contact_id, message="Sorry we missed you")

    assert caught.value.is_ambiguous is True
    # HighLevel did send it: this is why the exactly-once sender must look before it retries.
    assert len(sandbox.sent_messages(locationId=ACME, contactId=contact_id)) == 1
    assert sleeps == []


def test_a_500_on_send_is_ambiguous_and_not_retried(sandbox, ghl, sleeps):
    sandbox.fault("500", "^/conversations/messages$", method="POST", times=1)
    with pytest.raises(GHLServerError) as caught:
        ghl.send_message(ACME, contact_id=SEED_CONTACT_IDS[ACME][1], message="hi")
    assert caught.value.is_ambiguous is True and sleeps == []


def test_a_500_on_a_read_is_retried(sandbox, ghl, sleeps):
    sandbox.fault("500", "^/locations/", method="GET", times=2)
    assert ghl.get_location(ACME)["id"] == ACME
    assert len(sleeps) == 2


def test_a_gateway_html_page_is_a_server_error_naming_it(sandbox, ghl, sleeps):
    # A 502 page from a gateway is not HighLevel's answer: its body is undocumented, no contract breach.
    sandbox.fault("html_error", "^/contacts/", method="GET", times=10)
    with pytest.raises(GHLServerError) as caught:
        ghl.get_contact(ACME, SEED_CONTACT_IDS[ACME][0])
    assert "HTML page instead of JSON" in str(caught.value)
    assert caught.value.status == 502 and len(sleeps) == ghl.max_retries


def test_an_empty_answer_to_a_send_is_one_clear_ambiguous_error(sandbox, ghl, contract_recorder, sleeps):
    sandbox.fault("empty_body", "^/conversations/messages$", method="POST", times=1)
    contact_id = SEED_CONTACT_IDS[ACME][1]

    with contract_recorder.expect_violations(), pytest.raises(GHLBadResponse) as caught:
        ghl.send_message(ACME, contact_id=contact_id, message="Sorry we missed you")

    assert "empty body" in str(caught.value)
    assert caught.value.is_ambiguous is True  # it was sent; we just do not know the ids
    assert len(sandbox.sent_messages(locationId=ACME, contactId=contact_id)) == 1 and sleeps == []


def test_an_empty_answer_to_a_read_is_one_clear_error(sandbox, ghl, contract_recorder):
    sandbox.fault("empty_body", "^/contacts/", method="GET", times=1)
    with contract_recorder.expect_violations(), pytest.raises(GHLBadResponse) as caught:
        ghl.get_contact(ACME, SEED_CONTACT_IDS[ACME][0])
    assert str(caught.value).startswith(f"GET /contacts/{SEED_CONTACT_IDS[ACME][0]} -> 200: ")
    assert "empty body" in str(caught.value)


# ---------------------------------------------------------------- staying under the limit


def test_shared_limiter_keeps_the_client_under_highlevels_limit(sandbox, ghl, redis_client):
    sandbox.configure(rate_limit=5, rate_window=1.0)
    ghl.rate_limiter = RedisRateLimiter(redis_client, limit=5, window=1.0, key_prefix="test:rl")

    for _ in range(12):
        ghl.get_location(ACME)

    statuses = [r["status"] for r in sandbox.requests_log(path=f"^/locations/{ACME}$")]
    assert len(statuses) == 12 and 429 not in statuses


def test_without_the_limiter_highlevel_answers_429_and_the_client_honours_it(sandbox, ghl, sleeps):
    sandbox.configure(rate_limit=5, rate_window=1.0)
    with pytest.raises(GHLRateLimited) as caught:
        for _ in range(12):
            ghl.get_location(ACME)
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert len(sleeps) == ghl.max_retries  # each retry waited what HighLevel asked (sleep is recorded, not real)


# ---------------------------------------------------------------- the validator catches a bad request in transit


def test_a_hand_built_request_without_version_is_caught_in_transit(sandbox, tokens, contract_recorder):
    session = contract_recorder.session()
    with contract_recorder.expect_violations():
        answer = session.get(f"{sandbox.url}/locations/{ACME}", timeout=5,
                             headers={"Authorization": f"Bearer {tokens.access_token(ACME)}"})
    assert answer.status_code == 401
    (exchange,) = contract_recorder.exchanges
    assert "request: Missing required header parameter: Version" in exchange.problems


def test_a_hand_built_send_without_contact_id_is_caught_in_transit(sandbox, tokens, contract_recorder):
    session = contract_recorder.session()
    with contract_recorder.expect_violations():
        session.post(f"{sandbox.url}/conversations/messages", timeout=5, json={"type": "SMS", "message": "hi"},
                     headers={"Authorization": f"Bearer {tokens.access_token(ACME)}", "Version": "2021-04-15"})
    (exchange,) = contract_recorder.exchanges
    assert "request body: 'contactId' is a required property" in exchange.problems

