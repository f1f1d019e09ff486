"""`python -m workers`: the RQ worker (with its scheduler) plus the maintenance process (sweeper, periodic jobs,
and the admitter that turns newly received webhook events into jobs: at least one worker must run it).

Procfile: `worker: python -m workers`. Stop with SIGTERM: the current job finishes (RQ's warm
shutdown); a second SIGTERM kills it, and the event's lease then lets another worker take it over.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

__all__ = ["main"]

log = logging.getLogger("workers")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="process what is queued, then exit")
    parser.add_argument("--no-maintenance", action="store_true",
                        help="do not run the sweeper, periodic jobs and admitter in this worker (another one does)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the worker until SIGTERM; returns the process exit code (2 for configuration errors)."""
    args = _parse_args(argv)
    from integration.config import ConfigError, load_settings
    from workers.config import load_worker_config

    try:
        settings = load_settings()
        worker_config = load_worker_config()
    except ConfigError as exc:
        print(f"workers: configuration error: {exc}", file=sys.stderr)
        return 2
    if not settings.redis_url:
        print("workers: REDIS_URL is not set; the worker needs Redis (`textback run` starts one for local use)",
              file=sys.stderr)
        return 2

    from redis import Redis

    from integration import create_app
    from workers.config import set_worker_config
    from workers.job_logging import install_job_log_filter
    from workers.maintenance import start_maintenance_process
    from workers.priority import lower_cpu_priority
    from workers.queues import SERIALIZER
    from workers.worker import preload_job_code, worker_class

    problem = _unreachable_dependency(settings)
    if problem:
        print(f"workers: {problem}", file=sys.stderr)
        return 2

    # In-process jobs share one pool; forked horses build their own (see workers.worker).
    app = create_app(settings)
    set_worker_config(app, worker_config)
    install_job_log_filter()
    preload_job_code()
    # Before anything forks, so the maintenance process and work horses inherit it.
    for change in lower_cpu_priority(worker_config.cpu_nice):
        log.info("worker CPU priority lowered below the web's: %s (WORKER_NICE)", change)

    # Forked before the worker starts its pub/sub thread (see workers.maintenance for why a process).
    maintenance = None if args.no_maintenance or args.burst else start_maintenance_process(app)
    # No socket timeout: RQ blocks on BLPOP for minutes between jobs by design.
    connection = Redis.from_url(settings.redis_url, socket_connect_timeout=5, health_check_interval=30)
    try:
        with app.app_context():
            worker = worker_class(worker_config)(
                list(worker_config.queues), connection=connection, serializer=SERIALIZER,
                name=f"textback-{socket.gethostname()}-{os.getpid()}",
                job_monitoring_interval=worker_config.job_monitoring_interval,
            )
            log.info("worker %s on queues %s (pid %s)", worker.name, ", ".join(worker_config.queues), os.getpid())
            worker.work(with_scheduler=True, burst=args.burst,
                        logging_level=logging.getLevelName(logging.getLogger().level))
    finally:
        if maintenance is not None:
            maintenance.terminate()
            maintenance.join(timeout=10)
        connection.close()
    return 0


def _unreachable_dependency(settings) -> str | None:
    """One line naming Redis or the database when either cannot be reached at start-up (no URL, no password)."""
    from redis import Redis, RedisError
    from sqlalchemy import create_engine, text

    from integration.cli import describe_connection_error

    client = Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        client.ping()
    except RedisError as exc:
        return f"cannot reach Redis at REDIS_URL ({describe_connection_error(exc)})"
    finally:
        client.close()
    options = {"connect_args": {"connect_timeout": 5}} if settings.database_url.startswith("postgresql") else {}
    engine = create_engine(settings.database_url, **options)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        return f"cannot reach the database at DATABASE_URL ({describe_connection_error(exc)})"
    finally:
        engine.dispose()
    return None


if __name__ == "__main__":
    sys.exit(main())
