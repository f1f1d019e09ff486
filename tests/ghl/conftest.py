"""Fixtures for the HighLevel client tests."""

from __future__ import annotations

import pytest

from integration.ghl import GHLClient, StaticTokenProvider
from tests.ghl.scripted_server import ScriptedServer
from tests.plugins.contract import ContractRecorder

LOCATION = "LocAcme0000000000001"
COMPANY = "CompAgency0000000001"
ACCESS_TOKEN = "tok-access-ORIGINAL-0123456789"
FRESH_TOKEN = "tok-access-REFRESHED-9876543210"
CLIENT_SECRET = "client-secret-DO-NOT-LEAK-42"


@pytest.fixture
def scripted():
    with ScriptedServer() as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    """The client's injected sleep: records the delays instead of waiting."""
    return []


@pytest.fixture
def tokens() -> StaticTokenProvider:
    return StaticTokenProvider({LOCATION: ACCESS_TOKEN, COMPANY: ACCESS_TOKEN}, refresh=lambda resource: FRESH_TOKEN)


@pytest.fixture
def ghl(scripted, sleeps, tokens, spec_validator):
    """A client of the scripted server. Its requests are contract-checked too (its answers are scripted,
    off-spec on purpose, so they are not)."""
    client = GHLClient(base_url=scripted.url, client_id="5f0c1a2b3c4d5e6f7a8b9c0d-test",
                       client_secret=CLIENT_SECRET, token_provider=tokens, timeout=0.5, max_retries=3,
                       sleep=sleeps.append)
    recorder = ContractRecorder(spec_validator, check_answers=False)
    recorder.attach(client.session)
    yield client
    recorder.assert_clean()
