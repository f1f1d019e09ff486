"""The connection pool pings a connection only after it sat idle, and replaces one that fails the ping.

pool_pre_ping would ping before every transaction (about fifty per missed call); a connection used
moments ago is trusted, one idle for IDLE_PING_SECONDS is checked first.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from integration import db as db_module
from integration.db import Database


@pytest.fixture
def database(database_url):
    database = Database()
    database.configure(database_url)
    yield database
    database.dispose()


@pytest.fixture
def pings(database, monkeypatch):
    seen: list[object] = []
    real_ping = database.engine.dialect.do_ping

    def counting_ping(dbapi_connection):
        seen.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(database.engine.dialect, "do_ping", counting_ping)
    return seen


def driver_connection(database: Database):
    with database.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        return connection.connection.driver_connection


def test_a_connection_used_moments_ago_is_not_pinged(database, pings):
    first = driver_connection(database)
    assert driver_connection(database) is first
    assert pings == []


def test_an_idle_connection_is_pinged_before_use(database, pings, monkeypatch):
    first = driver_connection(database)
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
    assert driver_connection(database) is first
    assert pings == [first]


def test_an_idle_connection_that_fails_its_ping_is_replaced_before_any_statement(database, monkeypatch):
    first = driver_connection(database)
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)

    def dead(dbapi_connection):
        if dbapi_connection is first:
            raise OSError("server closed the connection unexpectedly")
        return True

    monkeypatch.setattr(database.engine.dialect, "do_ping", dead)
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT 41 + 1")).scalar_one() == 42
        assert connection.connection.driver_connection is not first


def test_a_fresh_connection_is_not_pinged(database, pings, monkeypatch):
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
    driver_connection(database)
    assert pings == []
