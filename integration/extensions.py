"""Process-wide handles (database, Redis), created empty and bound by the app factory.

Workers build the same app and so share these. Nothing connects at import time, and Redis is
connected lazily by redis-py on first use.
"""

from __future__ import annotations

from flask import Flask, current_app
from redis import Redis

from integration.config import Settings
from integration.db import Database

__all__ = ["ACK_STATEMENT_TIMEOUT_MS", "ack_db", "db", "get_redis", "get_settings", "init_app"]

db = Database()
# The webhook ack path's own pool: autocommit (one INSERT is one round trip) and a short statement timeout,
# so a locked inbox table turns into a fast 429 rather than a hung request (integration.webhooks).
ack_db = Database()
ACK_STATEMENT_TIMEOUT_MS = 3000


def init_app(app: Flask, settings: Settings, *, null_pool: bool = False, db_pool_size: int | None = None) -> None:
    db.configure(settings.database_url, null_pool=null_pool, pool_size=db_pool_size)
    ack_db.configure(settings.database_url, null_pool=null_pool, autocommit=True,
                     statement_timeout_ms=ACK_STATEMENT_TIMEOUT_MS)
    app.extensions["textback.settings"] = settings
    app.extensions["textback.redis"] = (
        Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)
        if settings.redis_url
        else None
    )


def get_settings(app: Flask | None = None) -> Settings:
    return (app or current_app).extensions["textback.settings"]


def get_redis(app: Flask | None = None) -> Redis:
    """The Redis connection; raises RuntimeError with a clear message when REDIS_URL is unset."""
    redis = (app or current_app).extensions["textback.redis"]
    if redis is None:
        raise RuntimeError("REDIS_URL is not set (the run command starts an embedded Redis; see README)")
    return redis
