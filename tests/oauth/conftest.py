"""Fixtures for the OAuth tests: real database, real Redis, the sandbox over real HTTP."""

from __future__ import annotations

import pytest

from integration.extensions import db
from oauth.crypto import TokenCipher
from oauth.store import InstallationStore


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
