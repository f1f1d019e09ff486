"""Fixtures that run the sandbox (simulated HighLevel) over real HTTP. Owned by the sandbox.

`sandbox`: one SandboxServer per test session on a free port, reset to the seed before each test.
It shares `instance_dir` with the app's settings, so the app verifies the sandbox's webhook
signatures with no configuration. Webhook retries are fast here (0.05 s apart) instead of ten
minutes; tests that need other behaviour call `sandbox.configure(...)`.

    def test_something(sandbox):
        tokens = sandbox.tokens(SEED_LOCATION_IDS[0])                 # consent + code exchange
        answer = sandbox.api("GET", f"/contacts/{cid}", tokens["access_token"])
        sandbox.place_call(SEED_LOCATION_IDS[0], "+15125550177", "no-answer")
        assert sandbox.sent_messages(locationId=SEED_LOCATION_IDS[0]) == []
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from integration.config import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from integration.sandbox.seed import APP_SCOPES, SEED_COMPANY_ID
from integration.sandbox.server import SandboxServer

__all__ = ["SandboxHandle"]

TEST_WEBHOOK_RETRY_DELAYS = (0.05,) * 6
DEFAULT_REDIRECT_URI = "http://localhost:5000/oauth/callback"
# Version header values per service, as the specs list them.
VERSIONS = {"/conversations": "2021-04-15", "/calendars": "2021-04-15"}


class SandboxHandle:
    """A test's view of the running sandbox: its URL, the control API and a few shortcuts."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.url = server.url
        self.http = requests.Session()

    # -- control API ---------------------------------------------------------------------------------

    def control(self, method: str, path: str, json=None, *, params: dict | None = None):
        """Call /_sandbox/<path>; return parsed JSON, raising on any non-2xx answer."""
        response = self.http.request(method, f"{self.url}/_sandbox/{path.lstrip('/')}", json=json,
                                     params=params, timeout=30)
        if not response.ok:
            raise AssertionError(f"sandbox control {method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def reset(self) -> None:
        self.control("POST", "reset")

    def configure(self, **changes) -> dict:
        return self.control("POST", "config", json=changes)

    def fault(self, mode: str, path: str, *, method: str | None = None, times: int | None = 1,
              delay: float | None = None, location_id: str | None = None) -> dict:
        body = {"mode": mode, "path": path, "method": method, "times": times, "locationId": location_id}
        if delay is not None:
            body["delay"] = delay
        return self.control("POST", "faults", json=body)

    def place_call(self, location_id: str, from_number: str, outcome: str = "no-answer", duration: int = 0) -> dict:
        return self.control("POST", "calls", json={"locationId": location_id, "from": from_number,
                                                   "outcome": outcome, "duration": duration})

    def reply(self, location_id: str, from_number: str, body: str) -> dict:
        return self.control("POST", "replies", json={"locationId": location_id, "from": from_number, "body": body})

    def sent_messages(self, **filters) -> list[dict]:
        return self.control("GET", "messages", params=filters)["messages"]

    def thread(self, contact_id: str) -> dict:
        return self.control("GET", "thread", params={"contactId": contact_id})

    def requests_log(self, **filters) -> list[dict]:
        return self.control("GET", "requests", params=filters)["requests"]

    def deliveries(self, **filters) -> list[dict]:
        return self.control("GET", "webhooks/deliveries", params=filters)["deliveries"]

    def wait_for_delivery(self, webhook_id: str, *, done=("delivered", "failed", "gave_up"),
                          timeout: float = 10.0) -> dict:
        """Poll the delivery log until the webhook reaches a final state (or fail the test)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.deliveries(webhookId=webhook_id)
            if found and found[0]["state"] in done:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook {webhook_id} not final after {timeout}s: {found}")
            time.sleep(0.02)

    # -- OAuth shortcuts -----------------------------------------------------------------------------

    def consent(self, location_id: str | None = None, *, bulk: bool = False, scope: str = APP_SCOPES,
                state: str | None = "test-state", redirect_uri: str = DEFAULT_REDIRECT_URI,
                cancel: bool = False) -> str:
        """Submit the consent page as a user would; return the redirect URL HighLevel sends back."""
        form = {"response_type": "code", "client_id": SANDBOX_CLIENT_ID, "redirect_uri": redirect_uri,
                "scope": scope, "choice": f"bulk:{SEED_COMPANY_ID}" if bulk else f"location:{location_id}",
                "action": "cancel" if cancel else "install"}
        if state:
            form["state"] = state
        response = self.http.post(f"{self.url}/v2/oauth/chooselocation", data=form, allow_redirects=False,
                                  timeout=30)
        if response.status_code != 302:
            raise AssertionError(f"consent page answered {response.status_code}: {response.text[:300]}")
        return response.headers["Location"]

    def authorize(self, location_id: str | None = None, **kwargs) -> str:
        """Consent and return only the authorization code."""
        query = parse_qs(urlsplit(self.consent(location_id, **kwargs)).query)
        return query["code"][0]

    def exchange(self, code: str, **extra) -> requests.Response:
        form = {"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
                "grant_type": "authorization_code", "code": code, **extra}
        return self.http.post(f"{self.url}/oauth/token", data=form, timeout=30)

    def refresh(self, refresh_token: str, **extra) -> requests.Response:
        form = {"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
                "grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
        return self.http.post(f"{self.url}/oauth/token", data=form, timeout=30)

    def tokens(self, location_id: str | None = None, *, bulk: bool = False, scope: str = APP_SCOPES) -> dict:
        """Install on a sub-account (Location token) or bulk for the agency (Company token)."""
        response = self.exchange(self.authorize(location_id, bulk=bulk, scope=scope))
        if response.status_code != 200:
            raise AssertionError(f"code exchange failed: {response.status_code} {response.text}")
        return response.json()

    # -- resource API --------------------------------------------------------------------------------

    def api(self, method: str, path: str, token: str | None, *, version: str | None = "auto",
            session: requests.Session | None = None, **kwargs) -> requests.Response:
        """Call a HighLevel endpoint with a bearer token and the right Version header.

        `session` lets a test send through its own (e.g. contract-recording) session.
        """
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if version == "auto":
            version = next((v for prefix, v in VERSIONS.items() if path.startswith(prefix)), "2021-07-28")
        if version is not None:
            headers["Version"] = version
        kwargs.setdefault("timeout", 30)
        return (session or self.http).request(method, f"{self.url}{path}", headers=headers, **kwargs)


@pytest.fixture(scope="session")
def sandbox_server(instance_dir):
    """The sandbox process-wide for the session (tests reset it, never restart it)."""
    server = SandboxServer(instance_path=instance_dir, webhook_retry_delays=TEST_WEBHOOK_RETRY_DELAYS,
                           webhook_retry_jitter=0.0, webhook_timeout=5.0).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server) -> SandboxHandle:
    handle = SandboxHandle(sandbox_server)
    handle.reset()
    yield handle
    handle.control("DELETE", "faults")
    handle.http.close()


@pytest.fixture
def sandbox_settings(settings, sandbox):
    """The app's settings pointed at the sandbox (API and Marketplace base URLs)."""
    return settings.override(ghl_api_base=sandbox.url, ghl_marketplace_base=sandbox.url)
