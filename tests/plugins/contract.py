"""Contract testing: validate every request a client makes, and every answer it reads, against the specs.

    def test_something(contract_recorder, sandbox):
        client = GHLClient(..., session=contract_recorder.session())
        client.get_contact(...)
        # at teardown, every exchange is validated; the test errors with the list of violations

`contract_recorder.session()` returns a requests.Session whose response hook records each exchange
(`attach(session)` hooks an existing one). Exchanges a test provokes on purpose (an injected HTML
error page) go inside `with contract_recorder.expect_violations():`, which asserts they do violate.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

import pytest
import requests

from integration.ghl.contract import SpecValidator


@dataclass
class Exchange:
    request: requests.PreparedRequest
    response: requests.Response
    problems: list[str] = field(default_factory=list)
    expected_off_spec: bool = False

    @property
    def subject(self) -> str:
        path = requests.utils.urlparse(self.request.url).path
        return f"{self.request.method} {path} -> {self.response.status_code}"


class ContractRecorder:
    """Records request/answer pairs from hooked sessions and validates each one against the specs."""

    def __init__(self, validator: SpecValidator, *, check_answers: bool = True) -> None:
        self.validator = validator
        # False for scripted test servers whose answers are off-spec on purpose: only requests are checked.
        self.check_answers = check_answers
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._expecting = False

    def session(self) -> requests.Session:
        return self.attach(requests.Session())

    def attach(self, session: requests.Session) -> requests.Session:
        session.hooks.setdefault("response", []).append(self._record)
        return session

    def _record(self, response: requests.Response, *args, **kwargs) -> requests.Response:
        request = response.request
        problems = self.validator.request_problems(request)
        if self.check_answers:
            problems += self.validator.response_problems(request, response)
        with self._lock:
            self.exchanges.append(Exchange(request, response, problems, expected_off_spec=self._expecting))
        return response

    @contextlib.contextmanager
    def expect_violations(self):
        """Exchanges inside the block must violate the spec (fault injection); they do not fail the test."""
        start = len(self.exchanges)
        self._expecting = True
        try:
            yield
        finally:
            self._expecting = False
        provoked = self.exchanges[start:]
        assert provoked, "expected an off-spec exchange, but no request was made"
        conforming = [e.subject for e in provoked if not e.problems]
        assert not conforming, f"expected spec violations, but these conform: {conforming}"

    @property
    def violations(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.problems and not e.expected_off_spec]

    def validated(self, method: str, template: str) -> list[Exchange]:
        """The recorded exchanges for one documented operation (e.g. "GET", "/contacts/{contactId}")."""
        found = []
        for exchange in self.exchanges:
            operation = self.validator.operation_for(exchange.request.method, exchange.request.url)
            if operation.method == method.upper() and operation.template == template:
                found.append(exchange)
        return found

    def assert_clean(self) -> None:
        bad = self.violations
        if bad:
            report = "\n".join(f"{e.subject}:\n    " + "\n    ".join(e.problems) for e in bad)
            pytest.fail(f"{len(bad)} exchange(s) with HighLevel violate the official spec:\n{report}",
                        pytrace=False)


@pytest.fixture(scope="session")
def spec_validator() -> SpecValidator:
    validator = SpecValidator()
    validator.load_all()
    return validator


@pytest.fixture
def contract_recorder(spec_validator):
    """A ContractRecorder; at teardown the test fails if any recorded exchange violated the specs."""
    recorder = ContractRecorder(spec_validator)
    yield recorder
    recorder.assert_clean()
