"""Storage plumbing: the declarative base, a UTC datetime type, and the `Database` handle.

Nothing here connects at import time: `Database.configure(url)` builds the engine when the app
factory (or a worker) asks for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

__all__ = ["Base", "Database", "JSONType", "ReadOnlySessionError", "UTCDateTime", "dialect_insert", "utcnow"]

# Deterministic constraint names so Alembic migrations read the same on PostgreSQL and SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")

# See _ping_idle_connections.
IDLE_PING_SECONDS = 10.0
_CHECKED_IN_AT = "textback_checked_in_at"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def dialect_insert(bind) -> Callable:
    """The `insert` construct with ON CONFLICT support for this session's or connection's database."""
    return dialect_insert_for((bind.get_bind() if isinstance(bind, Session) else bind).dialect.name)


def dialect_insert_for(dialect: str) -> Callable:
    """dialect_insert by the database's name ("postgresql" or "sqlite"), for statements built once per database."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database {dialect!r}")
    return insert


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Database:
    """Engine and session factory for one process, bound late by `configure()`."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        # The same pool, with every statement committing itself: reads and single-statement writes need no
        # BEGIN / COMMIT round trips (a missed call's handling made about seventy round trips before this).
        self._autocommit_engine: Engine | None = None
        self._sessionmaker: sessionmaker[Session] | None = None
        self._read_sessionmaker: sessionmaker[Session] | None = None

    def configure(self, url: str, *, null_pool: bool = False, autocommit: bool = False,
                  statement_timeout_ms: int | None = None, pool_size: int | None = None) -> None:
        """Create the engine.

        Args:
            null_pool: for forked RQ work horses, which must not share sockets.
            autocommit: every statement is its own transaction (the webhook ack path: one INSERT, one round trip).
            statement_timeout_ms: give up on a statement (or, on SQLite, a lock wait) after this long instead
                of hanging; set on the connection once, so it costs nothing per transaction.
            pool_size: connections kept open, and a quarter more opened at peak (SQLAlchemy's default: 5 + 10);
                a worker running many jobs at once asks for one per job.
        """
        if self.engine is not None:
            self.engine.dispose()
        options: dict = {"future": True}
        sqlite = url.startswith("sqlite")
        if sqlite:
            # SQLite: one file shared by web, worker and sandbox processes; wait for the write lock.
            options["connect_args"] = {"timeout": 15, "check_same_thread": False}
        else:
            options["connect_args"] = {"connect_timeout": 5}
            if statement_timeout_ms is not None:
                options["connect_args"]["options"] = f"-c statement_timeout={int(statement_timeout_ms)}"
        if autocommit:
            options["isolation_level"] = "AUTOCOMMIT"
            # Every statement committed itself: there is no transaction to roll back when a connection goes back
            # to the pool, and skipping that call is a measurable share of the ack path's CPU.
            options["pool_reset_on_return"] = None
        if null_pool:
            options["poolclass"] = NullPool
        elif pool_size is not None:
            options["pool_size"] = pool_size
            options["max_overflow"] = max(2, pool_size // 4)
        engine = create_engine(url, **options)
        if sqlite:
            busy_timeout_ms = 15000 if statement_timeout_ms is None else int(statement_timeout_ms)
            event.listen(engine, "connect", lambda connection, _record: _sqlite_pragmas(connection, busy_timeout_ms))
        _ping_idle_connections(engine)
        self.engine = engine
        self._autocommit_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sessionmaker = sessionmaker(bind=engine, expire_on_commit=False)
        self._read_sessionmaker = sessionmaker(bind=self._autocommit_engine, expire_on_commit=False, autoflush=False)
        event.listen(self._read_sessionmaker, "do_orm_execute", _refuse_writes)
        event.listen(self._read_sessionmaker, "before_flush", _refuse_flush)

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    def session(self) -> Session:
        """A session for reads: each statement runs on its own, so there is no BEGIN, COMMIT or ROLLBACK to wait
        for. On PostgreSQL (READ COMMITTED) every statement sees the latest commits either way. Writes raise:
        they belong in `transaction()` or, when one statement is the whole change, `autocommit()`."""
        if self._read_sessionmaker is None:
            raise RuntimeError("Database.configure() has not been called")
        return self._read_sessionmaker()

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A Core connection whose every statement commits itself: for a change that is one statement
        (a compare-and-set, an upsert), one round trip instead of three."""
        if self._autocommit_engine is None:
            raise RuntimeError("Database.configure() has not been called")
        with self._autocommit_engine.connect() as connection:
            yield connection

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits on success and rolls back (and re-raises) on error."""
        if self._sessionmaker is None:
            raise RuntimeError("Database.configure() has not been called")
        session = self._sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


class ReadOnlySessionError(RuntimeError):
    """A write was attempted in a `Database.session()`, whose statements each commit on their own."""


def _refuse_writes(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySessionError("Database.session() is for reads; write in Database.transaction()")


def _refuse_flush(session: Session, _flush_context, _instances) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlySessionError("Database.session() is for reads; write in Database.transaction()")


def _sqlite_pragmas(dbapi_connection, busy_timeout_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.close()


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection before use only when it sat idle for IDLE_PING_SECONDS or more.

    `pool_pre_ping` pings on every checkout: a round trip per transaction, about fifty per missed call.
    A connection used moments ago is almost surely alive; one that idled may have been cut (a database
    restart, a firewall's idle timeout) and is replaced here, before any statement fails. A connection
    cut within the window fails its statement once, which invalidates the pool (SQLAlchemy's disconnect
    handling), and the caller's usual retry (a 429 to HighLevel, an event retry) covers it.
    """

    @event.listens_for(engine, "checkin")
    def _stamp(_dbapi_connection, record) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, record, _proxy) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError(f"idle connection failed its ping ({type(exc).__name__})") from exc
