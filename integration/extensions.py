"""Process-wide handles (database, Redis), created empty and bound by the app factory.

Workers build the same app and so share these. Nothing connects at import time, and Redis is
connected lazily by redis-py on first use.
"""

from __future__ import annotations

from flask import Flask, current_app
from redis import Redis

from integration.config import Settings
from integration.db import Database

__all__ = ["db", "get_redis", "get_settings", "init_app"]

db = Database()


def init_app(app: Flask, settings: Settings, *, null_pool: bool = False) -> None:
    db.configure(settings.database_url, null_pool=null_pool)
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
