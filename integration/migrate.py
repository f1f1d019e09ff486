"""Run Alembic migrations programmatically (`textback db upgrade`, the Procfile's release phase, tests)."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import OperationalError

__all__ = ["alembic_config", "import_all_models", "upgrade"]

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"

# Modules that declare tables. Each capability adds its models module here and a migration.
MODEL_MODULES = ["integration.models", "oauth.models", "integration.textback.models", "integration.crm.models",
                 "integration.report.models",
                 "integration.settings_page.test_text", "integration.agent.models"]


def import_all_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # "%" is Alembic's interpolation character; passwords in URLs may contain it.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`. Creates the SQLite file's folder when needed."""
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:///:memory:"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


def current_tables(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        return set(inspect(engine).get_table_names())
    except OperationalError:
        return set()
    finally:
        engine.dispose()
