"""The three ways to talk to the database, on one shared pool.

- `session()`: reads, each statement on its own (no BEGIN before it, no ROLLBACK after); writes raise.
- `autocommit()`: a change that is one statement commits with it (one round trip).
- `transaction()`: several statements commit or roll back together, even on a pooled connection that
  was just used in autocommit mode (the pool must hand it back transactional).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Column, MetaData, String, Table, insert, select, text, update

from integration.db import Database, ReadOnlySessionError
from integration.models import Company

_scratch = Table("test_database_sessions_scratch", MetaData(), Column("id", String(40), primary_key=True))


@pytest.fixture
def database(database_url):
    database = Database()
    database.configure(database_url)
    _scratch.create(database.engine, checkfirst=True)
    yield database
    _scratch.drop(database.engine, checkfirst=True)
    database.dispose()


def in_transaction(driver_connection) -> bool:
    """Whether the DBAPI connection has a transaction open (psycopg or sqlite3)."""
    info = getattr(driver_connection, "info", None)
    if info is not None and hasattr(info, "transaction_status"):
        from psycopg.pq import TransactionStatus

        return info.transaction_status != TransactionStatus.IDLE
    return driver_connection.in_transaction


def stored_ids(database: Database) -> set[str]:
    with database.engine.connect() as connection:
        return set(connection.scalars(select(_scratch.c.id)))


def test_a_read_session_opens_no_transaction(database):
    with database.session() as session:
        assert session.execute(text("SELECT 41 + 1")).scalar_one() == 42
        assert not in_transaction(session.connection().connection.driver_connection)


@pytest.mark.parametrize("write", ["orm flush", "core update"])
def test_a_write_in_a_read_session_raises_and_writes_nothing(database, write):
    company_id = f"co-{uuid.uuid4().hex[:12]}"
    with database.session() as session, pytest.raises(ReadOnlySessionError, match=r"write in Database\.transaction"):
        if write == "orm flush":
            session.add(Company(id=company_id, name="Acme"))
            session.flush()
        else:
            session.execute(update(Company).where(Company.id == company_id).values(name="Acme"))
    with database.session() as session:
        assert session.get(Company, company_id) is None


def test_autocommit_commits_each_statement_at_once(database):
    with database.autocommit() as connection:
        connection.execute(insert(_scratch).values(id="first"))
        assert stored_ids(database) == {"first"}  # seen from another connection before this one closes
        assert not in_transaction(connection.connection.driver_connection)


def test_a_transaction_on_a_connection_just_used_in_autocommit_still_rolls_back(database):
    with database.autocommit() as connection:
        connection.execute(select(1))
        reused = connection.connection.driver_connection

    with pytest.raises(RuntimeError), database.transaction() as session:
        session.execute(insert(_scratch).values(id="rolled-back"))
        assert session.connection().connection.driver_connection is reused  # the same pooled connection
        raise RuntimeError("something failed half way")
    assert stored_ids(database) == set()

    with database.transaction() as session:
        session.execute(insert(_scratch).values(id="a"))
        session.execute(insert(_scratch).values(id="b"))
    assert stored_ids(database) == {"a", "b"}
