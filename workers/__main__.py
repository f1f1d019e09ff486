"""`python -m workers`: WORKER_PROCESSES RQ workers (workers.supervisor), each running WORKER_CONCURRENCY jobs at
once (workers.concurrent), plus the maintenance process (sweeper, RQ's scheduled jobs, periodic jobs, and the
admitter that turns newly received webhook events into jobs: at least one worker must run it).

Procfile: `worker: python -m workers`. Stop with SIGTERM: the jobs in flight finish (warm shutdown); a second
SIGTERM exits at once, and the events it held are taken over by another worker once its heartbeat stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

__all__ = ["main"]

log = logging.getLogger("workers")

TOKEN_REUSE_SECONDS = 2.0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="process what is queued, then exit")
    parser.add_argument("--no-maintenance", action="store_true",
                        help="do not run the sweeper, periodic jobs and admitter in this worker (another one does)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the worker until SIGTERM; returns the process exit code (2 for configuration errors)."""
    args = _parse_args(argv)
    # Before anything imports prometheus_client: every process forked from here adds to its group (integration.metrics).
    from integration.metrics_dir import prepare_process_group, remove_process_group

    group = prepare_process_group("workers")
    try:
        return _main(args)
    finally:
        remove_process_group(group)


def _main(args: argparse.Namespace) -> int:
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

    from integration import create_app
    from workers.config import set_worker_config
    from workers.job_logging import install_job_log_filter
    from workers.priority import lower_cpu_priority
    from workers.worker import preload_job_code

    problem = _unreachable_dependency(settings)
    if problem:
        print(f"workers: {problem}", file=sys.stderr)
        return 2

    # In-process jobs share one pool; forked horses build their own (see workers.worker). One connection kept open
    # per slot: a pool smaller than the slots opened and closed overflow connections all the time under load (a
    # PostgreSQL backend forked per connection, measured at a third of a core at 20 missed calls/s).
    pool_size = None if worker_config.fork_per_job else max(worker_config.concurrency,
                                                             worker_config.follow_up_concurrency)
    app = create_app(settings, db_pool_size=pool_size)
    problem = _unreadable_tokens(settings)
    if problem:
        print(f"workers: {problem}", file=sys.stderr)
        return 2
    set_worker_config(app, worker_config)
    # A worker reuses a location's token for a couple of seconds (oauth.tokens: why that is safe).
    from oauth.services import get_oauth

    get_oauth(app).tokens.reuse_seconds = TOKEN_REUSE_SECONDS
    install_job_log_filter()
    preload_job_code()
    # Before anything forks, so the maintenance process and work horses inherit it.
    for change in lower_cpu_priority(worker_config.cpu_nice):
        log.info("worker CPU priority lowered below the web's: %s (WORKER_NICE)", change)

    _serve_metrics(app, worker_config.metrics_port)
    if worker_config.processes > 1 and not args.burst and not worker_config.fork_per_job:
        from workers.supervisor import queues_of_process, supervise

        return supervise(lambda index: _run_worker(
            app, settings, _config_of_process(worker_config, queues_of_process(worker_config.queues, index,
                                                                               worker_config.processes)),
            burst=False, maintenance=index == 0 and not args.no_maintenance), processes=worker_config.processes)
    return _run_worker(app, settings, worker_config, burst=args.burst,
                       maintenance=not (args.no_maintenance or args.burst))


def _run_worker(app, settings, worker_config, *, burst: bool, maintenance: bool) -> int:
    """One worker process: its maintenance child (when asked), its heartbeat, and RQ's work loop until stopped."""
    from redis import Redis

    from integration.extensions import db
    from integration.liveness import Heartbeat, set_current_holder
    from workers.config import set_worker_config
    from workers.maintenance import start_maintenance_process
    from workers.priority import lower_cpu_priority
    from workers.queues import SERIALIZER, WEBHOOKS_QUEUE
    from workers.worker import worker_class

    # Forked before the worker starts any thread (see workers.maintenance for why a process). It also moves RQ's
    # scheduled jobs to their queues: RQ's own scheduler process dies with its first Redis error.
    maintenance_process = start_maintenance_process(app) if maintenance else None
    if WEBHOOKS_QUEUE not in worker_config.queues:
        for change in lower_cpu_priority(worker_config.follow_up_nice):
            log.info("follow-up worker's CPU priority lowered below the webhook worker's: %s (WORKER_FOLLOW_UP_NICE)",
                     change)
    name = f"textback-{socket.gethostname()}-{os.getpid()}"
    # After the fork: the heartbeat is a thread of this process only.
    heartbeat = Heartbeat(db, name, interval=worker_config.heartbeat_seconds).start()
    set_current_holder(name)
    # No socket timeout: RQ blocks on BLPOP for minutes between jobs by design.
    connection = Redis.from_url(settings.redis_url, socket_connect_timeout=5, health_check_interval=30)
    try:
        with app.app_context():
            worker = worker_class(worker_config)(
                list(worker_config.queues), connection=connection, serializer=SERIALIZER, name=name,
                job_monitoring_interval=worker_config.job_monitoring_interval,
                **_concurrency_options(app, worker_config),
            )
            set_worker_config(app, worker_config)  # this process's queues, when the supervisor split them
            log.info("worker %s on queues %s (pid %s, %s)", worker.name, ", ".join(worker_config.queues), os.getpid(),
                     "one job per forked horse" if worker_config.fork_per_job
                     else f"{worker.concurrency} jobs at once, {worker.webhook_slots} kept for webhook events")
            # A burst run moves due scheduled jobs itself; otherwise the maintenance process does, every tick.
            worker.work(with_scheduler=burst, burst=burst,
                        logging_level=logging.getLevelName(logging.getLogger().level))
    finally:
        heartbeat.stop()
        if maintenance_process is not None:
            maintenance_process.terminate()
            maintenance_process.join(timeout=10)
        connection.close()
    return 0


def _serve_metrics(app, port: int) -> None:
    """WORKER_METRICS_PORT: this group's counters over HTTP, from a small process of its own (forked now, before
    any thread: forking a process with a server thread could copy a lock held mid-request into a worker)."""
    if not port:
        return
    import multiprocessing

    from workers.supervisor import die_with_parent

    def serve() -> None:
        import signal

        from prometheus_client import CollectorRegistry, start_http_server

        from integration.metrics import process_group_collectors

        die_with_parent()
        registry = CollectorRegistry(auto_describe=False)
        for collector in process_group_collectors(only_own_group=True):
            registry.register(collector)
        try:
            start_http_server(port, registry=registry)
        except OSError as exc:
            log.error("worker metrics: cannot listen on port %s (%s); WORKER_METRICS_PORT", port, exc)
            return
        log.info("worker metrics on http://0.0.0.0:%s/metrics (WORKER_METRICS_PORT)", port)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        while True:  # until SIGTERM (the supervisor's exit, or its death through die_with_parent)
            signal.pause()

    multiprocessing.get_context("fork").Process(target=serve, name="textback-metrics", daemon=True).start()


def _config_of_process(worker_config, queues: tuple[str, ...]):
    """One supervised process's settings: its queues, and the follow-up slots when it takes no webhook events."""
    from workers.queues import WEBHOOKS_QUEUE

    if WEBHOOKS_QUEUE in queues:
        return worker_config.override(queues=queues)
    return worker_config.override(queues=queues, concurrency=worker_config.follow_up_concurrency)


def _concurrency_options(app, worker_config) -> dict:
    if worker_config.fork_per_job:
        return {}
    return {"app": app, "concurrency": worker_config.concurrency, "webhook_slots": worker_config.webhook_slots}


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


def _unreadable_tokens(settings) -> str | None:
    """One line when no stored HighLevel token decrypts with TOKEN_ENCRYPTION_KEYS; some failing are logged.

    Refusing to start keeps the inbox's events pending until the keys are put right; started, the workers
    would spend every event's attempts on calls that cannot authenticate and record them as failed.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from integration.cli import describe_connection_error
    from integration.extensions import db
    from oauth.crypto import TokenCipher, check_stored_tokens

    try:
        check = check_stored_tokens(db, TokenCipher.from_settings(settings))
    except SQLAlchemyError as exc:  # no schema yet, say: the jobs will meet and report the same problem
        log.warning("could not check the stored tokens against TOKEN_ENCRYPTION_KEYS (%s)",
                    describe_connection_error(exc))
        return None
    finally:
        # Close the connection here, in its owner: the maintenance process forked next would otherwise inherit
        # it in the pool, and its start-up dispose() would end the session under this process.
        db.dispose()
    if check.none_decrypt:
        return (f"none of the {check.checked} most recently used HighLevel tokens decrypts with TOKEN_ENCRYPTION_KEYS "
                "(replaced instead of rotated?): put the previous key back after the new one, then run "
                "`textback rotate-keys` (see the README)")
    if check.undecryptable:
        log.error("%d of the %d most recently used installations have tokens no TOKEN_ENCRYPTION_KEYS key decrypts "
                  "(installation ids %s): they need their old key back, or reinstalling", len(check.undecryptable),
                  check.checked, ", ".join(map(str, check.undecryptable)))
    return None


if __name__ == "__main__":
    sys.exit(main())
