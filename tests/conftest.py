"""Shared fixtures: a migrated database (PostgreSQL when TEST_DATABASE_URL is set, else SQLite),
a real Redis (REDIS_URL, else an embedded one), settings, the app and its test client."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy import create_engine, text

from integration import create_app
from integration.config import load_settings, normalize_database_url
from integration.db import Base
from integration.embedded_redis import EmbeddedRedis
from integration.migrate import import_all_models, upgrade

pytest_plugins = ["tests.plugins.sandbox", "tests.plugins.contract", "tests.plugins.webhooks"]


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("instance")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    """A migrated, empty database for the whole session."""
    raw = os.environ.get("TEST_DATABASE_URL")
    if raw:
        url = normalize_database_url("TEST_DATABASE_URL", raw)
        engine = create_engine(url)
        with engine.begin() as conn:
            # A test database is ours to wipe: start from nothing so migrations run for real.
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def redis_url():
    raw = os.environ.get("REDIS_URL")
    if raw:
        yield raw
        return
    server = EmbeddedRedis().start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_client(redis_url):
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


def _truncate_all(url: str) -> None:
    import_all_models()
    engine = create_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if url.startswith("postgresql"):
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))  # noqa: S608 - table names from our metadata
    engine.dispose()


@pytest.fixture
def clean_db(database_url):
    _truncate_all(database_url)
    return database_url


@pytest.fixture
def test_environ(clean_db, redis_url, instance_dir) -> dict[str, str]:
    """The environment a test app starts from: nothing from the developer's shell leaks in."""
    return {
        "TEXTBACK_ENV": "development",
        "DATABASE_URL": clean_db,
        "REDIS_URL": redis_url,
        "PUBLIC_BASE_URL": "http://localhost:5000",
    }


@pytest.fixture
def settings(test_environ, instance_dir):
    return load_settings(test_environ, instance_path=instance_dir)


@pytest.fixture
def app(settings, redis_client):
    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    from integration.extensions import ack_db, db

    db.dispose()
    ack_db.dispose()


@pytest.fixture
def client(app):
    return app.test_client()
