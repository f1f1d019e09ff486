"""Storage plumbing: the declarative base, a UTC datetime type, and the `Database` handle.

Nothing here connects at import time: `Database.configure(url)` builds the engine when the app
factory (or a worker) asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, MetaData, create_engine, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

__all__ = ["Base", "Database", "JSONType", "UTCDateTime", "utcnow"]

# Deterministic constraint names so Alembic migrations read the same on PostgreSQL and SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Database:
    """Engine and session factory for one process, bound late by `configure()`."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self._sessionmaker: sessionmaker[Session] | None = None

    def configure(self, url: str, *, null_pool: bool = False) -> None:
        """Create the engine. `null_pool` for forked RQ work horses, which must not share sockets."""
        if self.engine is not None:
            self.engine.dispose()
        options: dict = {"future": True}
        if url.startswith("sqlite"):
            # SQLite: one file shared by web, worker and sandbox processes; wait for the write lock.
            options["connect_args"] = {"timeout": 15, "check_same_thread": False}
        else:
            options["pool_pre_ping"] = True
            options["connect_args"] = {"connect_timeout": 5}
        if null_pool:
            options["poolclass"] = NullPool
        engine = create_engine(url, **options)
        if url.startswith("sqlite"):
            event.listen(engine, "connect", _sqlite_pragmas)
        self.engine = engine
        self._sessionmaker = sessionmaker(bind=engine, expire_on_commit=False)

    def dispose(self) -> None:
        if self.engine is not None:
            self.engine.dispose()

    def session(self) -> Session:
        if self._sessionmaker is None:
            raise RuntimeError("Database.configure() has not been called")
        return self._sessionmaker()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits on success and rolls back (and re-raises) on error."""
        session = self.session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()
