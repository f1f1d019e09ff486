"""Worker tuning: leases, retries, sweeper cadence. Environment first, with defaults that meet DESIGN §4.6.

Why these defaults: RQ alone recovers a job from a `kill -9`'d worker only after minutes
(reliability-catalogue §0.6). We recover through our own lease instead: a worker renews the lease of
the event it processes every `event_lease_seconds / 3`; a lease that stops being renewed is expired
after `event_lease_seconds` and the sweeper (every `sweep_interval_seconds`) hands the event to
another worker. 15 s + 2 s + pickup keeps a killed job's recovery well inside the 30 s budget.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

from integration.config import ConfigError, parse_bool, parse_float, parse_int

__all__ = ["MIN_INBOX_RETENTION_DAYS", "WorkerConfig", "get_worker_config", "load_worker_config", "parse_delays",
           "set_worker_config"]


def parse_delays(name: str, raw: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
    """Parse "5,30,120" into (5, 30, 120); junk is an error naming the variable."""
    if raw is None or raw.strip() == "":
        return default
    try:
        delays = tuple(int(part.strip()) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name} must be comma-separated whole seconds, got {raw!r}") from None
    if not delays or any(d < 0 for d in delays):
        raise ConfigError(f"{name} must list at least one non-negative delay, got {raw!r}")
    return delays


def default_processes() -> int:
    """Four worker processes where this process may use two cores or more (three for webhook events, one for the
    follow-ups: benchmarks/webhook_pipeline.py), else one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return 4 if cores >= 2 else 1


# A pruned webhook's dedupe key goes with it, so a replay of it would be stored anew. Kept longer than the longest
# call age a location may allow (integration.textback.settings.MAX_CALL_AGE_MINUTES, 7 days), a replayed call is
# always too old to text; HighLevel's own retries stop after about 70 minutes.
MIN_INBOX_RETENTION_DAYS = 8


@dataclass(frozen=True)
class WorkerConfig:
    """Typed worker settings; tests derive variants with `override()`."""

    queues: tuple[str, ...] = ("webhooks", "default", "low")
    # CPU priority below the web's (workers.priority): on a saturated shared machine webhooks are answered first.
    cpu_nice: int = 10
    # The processes that take no webhook events (CRM follow-ups, echoes, sweeps) go lower still: on a saturated
    # machine a caller's text wins over another call's tag and note (the texts-first rule, at the scheduler).
    follow_up_nice: int = 15
    # Serve this supervisor's metrics on this port (0: not served; the web's /metrics includes them when web and
    # workers share a machine and its metrics directory: integration.metrics).
    metrics_port: int = 0
    # False: run jobs in the worker process itself (RQ's SimpleWorker), keeping one database pool warm.
    # True: fork a work horse per job (RQ's default), isolating jobs from each other at the price of a
    # fork and fresh database connections per job (50-300 ms on a busy 2-core host; see the README).
    fork_per_job: bool = False
    # Worker processes `python -m workers` runs (workers.supervisor): one uses at most a core (the GIL).
    processes: int = field(default_factory=lambda: default_processes())
    # Jobs one worker process runs at once, in threads (workers.concurrent): a job mostly waits on HighLevel, so
    # this, not the CPU, bounds a worker's throughput. Ignored with fork_per_job (one job per horse). Few per
    # process: every database and HTTP round trip of a job waits for the GIL behind the other busy threads, and
    # at 16 a text job spent ~1.5 s of its ~1.9 s doing that at 20 missed calls/s; processes scale instead.
    concurrency: int = 8
    # The same for the processes that take no webhook events: a lead's follow-up waits on four HighLevel calls
    # in a row, nobody waits on it, and a slower round trip there costs no caller anything.
    follow_up_concurrency: int = 24
    # Of those, slots only webhook-event jobs may take: a burst of CRM follow-ups never delays a text.
    webhook_slots: int = 4
    # Each worker process writes a heartbeat this often (integration.liveness); one silent for
    # `dead_after_seconds` is dead, and the event or text it held is taken over at once.
    heartbeat_seconds: float = 1.0
    dead_after_seconds: float = 5.0
    # After a dead worker's send, how long HighLevel may take to show the text in the conversation (or send
    # its echo) before it is sent again; counted from the dead worker's last heartbeat (see the README).
    send_settle_seconds: float = 3.0
    # RQ's own heartbeat; lower than its 30 s default so RQ notices a dead horse sooner.
    job_monitoring_interval: int = 5
    # Longest a process_event job may run before RQ kills it (SIGALRM); the handler's HTTP timeouts are shorter.
    event_job_timeout: int = 120
    # An event whose lease is not renewed for this long belongs to a dead worker.
    event_lease_seconds: float = 15.0
    # Attempts (claims) before an event is marked failed, and the wait before each retry.
    event_max_attempts: int = 6
    event_retry_delays: tuple[int, ...] = (5, 30, 120, 600, 1800)
    # How long an event for a location whose install has not settled waits for it, from its arrival; then it is
    # ignored with that reason (oauth.install_wait). Waiting is not an attempt.
    install_wait_seconds: float = 600.0
    # The sweeper: how often it runs, and how old a pending event must be before it re-enqueues it
    # (younger ones were just enqueued by the receiver).
    sweep_interval_seconds: float = 2.0
    sweep_min_age_seconds: float = 3.0
    sweep_batch_size: int = 200
    # Webhook-event jobs kept waiting per queue (workers.admitter); a burst beyond it waits as ids, which cost
    # nothing, instead of as RQ jobs built at the arrival rate. Workers top the queue up before each dequeue.
    admit_ahead: int = 20
    # Retry policy for jobs other than process_event (which keeps its retries in the database).
    rq_retry_max: int = 3
    rq_retry_intervals: tuple[int, ...] = (10, 60, 300)
    # Finished inbox events (done, ignored, failed) older than this are deleted by a periodic job
    # (workers.inbox_retention); pending ones and INSTALL/UNINSTALL events are kept.
    inbox_retention_days: int = 30
    # How long RQ keeps a successful job's result, and a failed one's traceback.
    result_ttl: int = 600
    failure_ttl: int = 7 * 24 * 3600

    def retry_delay(self, attempt: int) -> int:
        """Seconds to wait before retrying after failed attempt number `attempt` (1-based)."""
        index = min(max(attempt, 1), len(self.event_retry_delays)) - 1
        return self.event_retry_delays[index]

    def override(self, **changes: object) -> WorkerConfig:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ConfigError(f"unknown worker setting(s): {', '.join(sorted(unknown))}")
        return replace(self, **changes)


def load_worker_config(environ: Mapping[str, str] | None = None) -> WorkerConfig:
    """Read worker tuning from the environment; raise ConfigError naming the first bad variable."""
    env = os.environ if environ is None else environ
    defaults = WorkerConfig()
    queues_raw = env.get("WORKER_QUEUES", "")
    queues = tuple(q.strip() for q in queues_raw.split(",") if q.strip()) or defaults.queues
    config = WorkerConfig(
        queues=queues,
        cpu_nice=parse_int("WORKER_NICE", env.get("WORKER_NICE"), defaults.cpu_nice, minimum=0, maximum=19),
        follow_up_nice=parse_int("WORKER_FOLLOW_UP_NICE", env.get("WORKER_FOLLOW_UP_NICE"), defaults.follow_up_nice,
                                 minimum=0, maximum=19),
        metrics_port=parse_int("WORKER_METRICS_PORT", env.get("WORKER_METRICS_PORT"), defaults.metrics_port,
                               minimum=0, maximum=65535),
        fork_per_job=parse_bool("WORKER_FORK_PER_JOB", env.get("WORKER_FORK_PER_JOB"), defaults.fork_per_job),
        processes=parse_int("WORKER_PROCESSES", env.get("WORKER_PROCESSES"), defaults.processes, minimum=1,
                            maximum=64),
        concurrency=parse_int("WORKER_CONCURRENCY", env.get("WORKER_CONCURRENCY"), defaults.concurrency,
                              minimum=1, maximum=256),
        follow_up_concurrency=parse_int("WORKER_FOLLOW_UP_CONCURRENCY", env.get("WORKER_FOLLOW_UP_CONCURRENCY"),
                                        defaults.follow_up_concurrency, minimum=1, maximum=256),
        webhook_slots=parse_int("WORKER_WEBHOOK_SLOTS", env.get("WORKER_WEBHOOK_SLOTS"), defaults.webhook_slots,
                                minimum=0, maximum=256),
        heartbeat_seconds=parse_float("WORKER_HEARTBEAT_SECONDS", env.get("WORKER_HEARTBEAT_SECONDS"),
                                      defaults.heartbeat_seconds, minimum=0.1),
        dead_after_seconds=parse_float("WORKER_DEAD_AFTER_SECONDS", env.get("WORKER_DEAD_AFTER_SECONDS"),
                                       defaults.dead_after_seconds, minimum=1.0),
        send_settle_seconds=parse_float("SEND_SETTLE_SECONDS", env.get("SEND_SETTLE_SECONDS"),
                                        defaults.send_settle_seconds),
        job_monitoring_interval=parse_int(
            "WORKER_JOB_MONITORING_INTERVAL", env.get("WORKER_JOB_MONITORING_INTERVAL"),
            defaults.job_monitoring_interval, minimum=1,
        ),
        event_job_timeout=parse_int("EVENT_JOB_TIMEOUT", env.get("EVENT_JOB_TIMEOUT"), defaults.event_job_timeout,
                                    minimum=5),
        event_lease_seconds=parse_float("EVENT_LEASE_SECONDS", env.get("EVENT_LEASE_SECONDS"),
                                        defaults.event_lease_seconds, minimum=1.0),
        event_max_attempts=parse_int("EVENT_MAX_ATTEMPTS", env.get("EVENT_MAX_ATTEMPTS"),
                                     defaults.event_max_attempts, minimum=1),
        event_retry_delays=parse_delays("EVENT_RETRY_DELAYS", env.get("EVENT_RETRY_DELAYS"),
                                        defaults.event_retry_delays),
        install_wait_seconds=parse_float("INSTALL_WAIT_SECONDS", env.get("INSTALL_WAIT_SECONDS"),
                                         defaults.install_wait_seconds, minimum=1.0),
        sweep_interval_seconds=parse_float("SWEEP_INTERVAL_SECONDS", env.get("SWEEP_INTERVAL_SECONDS"),
                                           defaults.sweep_interval_seconds, minimum=0.1),
        sweep_min_age_seconds=parse_float("SWEEP_MIN_AGE_SECONDS", env.get("SWEEP_MIN_AGE_SECONDS"),
                                          defaults.sweep_min_age_seconds),
        sweep_batch_size=parse_int("SWEEP_BATCH_SIZE", env.get("SWEEP_BATCH_SIZE"), defaults.sweep_batch_size,
                                   minimum=1),
        admit_ahead=parse_int("WORKER_ADMIT_AHEAD", env.get("WORKER_ADMIT_AHEAD"), defaults.admit_ahead, minimum=1),
        rq_retry_max=parse_int("RQ_RETRY_MAX", env.get("RQ_RETRY_MAX"), defaults.rq_retry_max),
        rq_retry_intervals=parse_delays("RQ_RETRY_INTERVALS", env.get("RQ_RETRY_INTERVALS"),
                                        defaults.rq_retry_intervals),
        inbox_retention_days=parse_int("INBOX_RETENTION_DAYS", env.get("INBOX_RETENTION_DAYS"),
                                       defaults.inbox_retention_days, minimum=MIN_INBOX_RETENTION_DAYS),
        result_ttl=parse_int("RQ_RESULT_TTL", env.get("RQ_RESULT_TTL"), defaults.result_ttl),
        failure_ttl=parse_int("RQ_FAILURE_TTL", env.get("RQ_FAILURE_TTL"), defaults.failure_ttl, minimum=1),
    )
    if config.dead_after_seconds < 3 * config.heartbeat_seconds:
        # Fewer than three missed beats would take a worker that paused for a moment (a GC, a busy CPU) for dead.
        raise ConfigError(f"WORKER_DEAD_AFTER_SECONDS ({config.dead_after_seconds:g}) must be at least three "
                          f"WORKER_HEARTBEAT_SECONDS ({config.heartbeat_seconds:g})")
    return config


_APP_KEY = "textback.worker_config"


def get_worker_config(app=None) -> WorkerConfig:
    """The WorkerConfig of the current app: set by `set_worker_config`, else read from the environment once."""
    from flask import current_app

    app = app or current_app
    config = app.extensions.get(_APP_KEY)
    if config is None:
        config = load_worker_config()
        app.extensions[_APP_KEY] = config
    return config


def set_worker_config(app, config: WorkerConfig) -> None:
    """Bind `config` to `app` (the worker entry point and tests)."""
    app.extensions[_APP_KEY] = config
