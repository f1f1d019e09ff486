"""Alembic environment: the URL comes from our settings (or the caller), never from an ini file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import integration.models  # noqa: F401 - registers the foundation tables
from integration.db import Base
from integration.migrate import import_all_models

import_all_models()
target_metadata = Base.metadata
url = context.config.get_main_option("sqlalchemy.url")


def run_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Batch mode lets ALTER TABLE migrations run on SQLite too.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
