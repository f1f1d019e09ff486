"""Fixtures for the OAuth tests: real database, real Redis, the sandbox over real HTTP.

Every test here also runs under `no_token_in_clear`: it captures every log record of the test and,
at teardown, dumps every table; neither may contain any token the test's installations hold (nor
any JWT-shaped string in the tables).
"""

from __future__ import annotations

import contextlib
import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import create_engine, select

from integration import create_app
from integration.db import Base
from integration.extensions import db
from integration.migrate import import_all_models
from integration.models import Installation
from oauth.crypto import TokenCipher
from oauth.errors import TokenDecryptError
from oauth.services import get_oauth
from oauth.store import InstallationStore

JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


# --- Plain storage fixtures ---


@pytest.fixture
def database(app):
    """The app's configured Database (migrated, emptied before each test)."""
    return db


@pytest.fixture
def cipher(settings):
    return TokenCipher.from_settings(settings)


@pytest.fixture
def store(cipher):
    return InstallationStore(cipher)


# --- The app against the sandbox ---


@pytest.fixture
def oauth_app(sandbox_settings, redis_client):
    """The app pointed at the sandbox, with an app context pushed for handlers and jobs."""
    application = create_app(sandbox_settings)
    application.config["TESTING"] = True
    with application.app_context():
        yield application
    db.dispose()


@pytest.fixture
def oauth(oauth_app):
    return get_oauth(oauth_app)


@pytest.fixture
def browser(oauth_app):
    return oauth_app.test_client()


class ConsentDance:
    """Drives an install the way a person's browser does: our /oauth/install, HighLevel's consent page,
    back to our /oauth/callback."""

    def __init__(self, browser, sandbox) -> None:
        self.browser = browser
        self.sandbox = sandbox

    def consent_url(self) -> str:
        response = self.browser.get("/oauth/install")
        assert response.status_code == 302, response.status_code
        return response.headers["Location"]

    def approve(self, *, location_id: str | None = None, company_id: str | None = None,
                action: str = "install") -> str:
        """Start at /oauth/install, pick on the consent page; return the callback URL HighLevel redirects to."""
        consent = urlsplit(self.consent_url())
        form = {k: v[0] for k, v in parse_qs(consent.query).items()}
        form["choice"] = f"bulk:{company_id}" if company_id else f"location:{location_id}"
        form["action"] = action
        response = self.sandbox.http.post(f"{self.sandbox.url}{consent.path}", data=form, allow_redirects=False,
                                          timeout=30)
        assert response.status_code == 302, response.text[:300]
        return response.headers["Location"]

    def callback(self, callback_url: str, *, client=None):
        url = urlsplit(callback_url)
        return (client or self.browser).get(f"{url.path}?{url.query}")

    def install(self, **choice):
        return self.callback(self.approve(**choice))


@pytest.fixture
def dance(browser, sandbox):
    return ConsentDance(browser, sandbox)


# --- The leak guard ---


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception as exc:  # a record that cannot even be formatted must not hide a leak
            self.lines.append(f"UNFORMATTABLE {record.name}: {exc!r}")


@pytest.fixture
def watched_tokens() -> set[str]:
    """Tests add tokens they saw in clear (e.g. straight from the sandbox) to have them checked too."""
    return set()


@pytest.fixture
def captured_logs():
    handler = _Capture()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture(autouse=True)
def no_token_in_clear(request, captured_logs, watched_tokens):
    # Taken before the test's own fixtures so that it is torn down after them.
    settings = request.getfixturevalue("settings") if "settings" in request.fixturenames else None
    yield
    if settings is None:
        return  # the test touched no database
    known = set(watched_tokens) | _tokens_in_database(settings)
    dump = _dump_tables(settings.database_url)
    logs = "\n".join(captured_logs)
    for token in known:
        assert token not in dump, "a token is stored in clear"
        assert token not in logs, "a token reached the logs"
    assert not JWT_SHAPE.search(dump), "a JWT-shaped string is stored in clear"


def _tokens_in_database(settings) -> set[str]:
    cipher = TokenCipher.from_settings(settings)
    engine = create_engine(settings.database_url)
    found: set[str] = set()
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Installation.access_token_encrypted, Installation.refresh_token_encrypted))
            for pair in rows:
                for ciphertext in pair:
                    if ciphertext:
                        with contextlib.suppress(TokenDecryptError):
                            found.add(cipher.decrypt(ciphertext))
    finally:
        engine.dispose()
    return found


def _dump_tables(database_url: str) -> str:
    import_all_models()
    engine = create_engine(database_url)
    parts: list[str] = []
    try:
        with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                for row in conn.execute(table.select()):
                    parts.append(f"{table.name}: {tuple(row)!r}")
    finally:
        engine.dispose()
    return "\n".join(parts)
