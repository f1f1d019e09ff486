"""TextBack for HighLevel: the Flask application factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask

from integration.config import Settings, load_settings

__all__ = ["create_app"]


def create_app(config: Settings | Mapping[str, object] | None = None, *, null_pool: bool = False,
               db_pool_size: int | None = None) -> Flask:
    """Build the app. `config` is a Settings, or a mapping of Settings fields overriding the environment.
    `db_pool_size`: the main database pool's size (integration.db.Database.configure), for a busy worker.

    Nothing connects to the database or Redis here; the first request (or job) does.
    """
    if isinstance(config, Settings):
        settings = config
    else:
        settings = load_settings()
        if config:
            settings = settings.override(**dict(config))

    app = Flask(__name__, instance_path=settings.instance_path, instance_relative_config=True)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.webhook_max_bytes,
        TEXTBACK=settings,
    )

    from integration import extensions, web_security
    from integration.logging_setup import configure_logging

    configure_logging(app)
    extensions.init_app(app, settings, null_pool=null_pool, db_pool_size=db_pool_size)
    web_security.init_app(app, settings)

    from integration.health import bp as health_bp

    app.register_blueprint(health_bp)
    _register_optional_blueprints(app)
    from integration.webhooks import mount_receiver

    mount_receiver(app)
    logging.getLogger(__name__).debug("app created (env=%s, sandbox_mode=%s)", settings.env, settings.sandbox_mode)
    return app


def _register_optional_blueprints(app: Flask) -> None:
    """Blueprints of later capabilities register here, imported inside the factory (no import cycles)."""
    from integration import blueprints

    for blueprint in blueprints.all_blueprints():
        app.register_blueprint(blueprint)
