"""`python -m workers` as a real process: it starts, stops gracefully, and a worker killed with
`kill -9` mid-job does not lose the event (issue 4 item 6: recovered well within 30 s)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq import Worker

from integration.extensions import get_redis
from tests.workers.fixture_handlers import runs
from tests.workers.helpers import load_event
from workers.queues import enqueue_event, event_job_id

ROOT = Path(__file__).resolve().parents[2]
OVERALL_TIMEOUT = 120.0


class WorkerProcess:
    """One `python -m tests.workers.run_worker` in its own process group, output kept in a file."""

    def __init__(self, environ: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.workers.run_worker"], cwd=ROOT, env=environ,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def session_pids(self) -> list[int]:
        """Every live process of this worker's session: RQ puts each work horse in a process group of its
        own (os.setpgrp), so killing the worker's group alone would leave the horse running."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) == self.process.pid and fields[0] != "Z":  # session id, state
                pids.append(int(entry.name))
        return pids

    def kill_everything(self) -> int:
        """kill -9 the worker, its work horse, its scheduler and its maintenance loop at once."""
        pids = self.session_pids()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        return len(pids)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._log.close()
        return self.process.returncode


def wait_for(condition, *, what: str, workers: list[WorkerProcess], timeout: float = OVERALL_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    logs = "\n".join(f"--- worker {w.pid} ---\n{w.output()[-4000:]}" for w in workers)
    pytest.fail(f"timed out waiting for {what}\n{logs}")


@pytest.fixture
def worker_environ(test_environ, instance_dir) -> dict[str, str]:
    # One worker process per `python -m workers` here (these tests count and kill processes); the supervisor of
    # several has its own tests below.
    return {**test_environ, "TEXTBACK_INSTANCE_PATH": str(instance_dir), "PATH": os.environ.get("PATH", ""),
            "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1", "WORKER_PROCESSES": "1"}


@pytest.fixture
def start_worker(worker_environ, tmp_path):
    started: list[WorkerProcess] = []

    def start(**extra_environ: str) -> WorkerProcess:
        worker = WorkerProcess({**worker_environ, **extra_environ}, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def live_worker_count() -> int:
    return len(Worker.all(connection=get_redis()))


def test_without_redis_url_it_says_so_in_one_line_and_exits_2(worker_environ):
    environ = {k: v for k, v in worker_environ.items() if k != "REDIS_URL"}
    result = subprocess.run([sys.executable, "-m", "workers"], cwd=ROOT, env=environ, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "REDIS_URL is not set" in result.stderr


def test_with_keys_that_read_no_stored_token_it_refuses_to_start_and_says_what_to_do(worker_environ, settings):
    from cryptography.fernet import Fernet

    from integration.db import Database
    from integration.models import Installation
    from oauth.crypto import TokenCipher

    database = Database()
    database.configure(settings.database_url)
    try:
        with database.transaction() as session:
            session.add(Installation(user_type="Location", resource_id="loc1", location_id="loc1", status="active",
                                     access_token_encrypted=TokenCipher.from_settings(settings).encrypt("a-token"),
                                     is_bulk_installation=False))
    finally:
        database.dispose()
    replaced = Fernet.generate_key().decode()
    result = subprocess.run([sys.executable, "-m", "workers", "--burst"], cwd=ROOT, capture_output=True, text=True,
                            env={**worker_environ, "TOKEN_ENCRYPTION_KEYS": replaced}, timeout=60)
    assert result.returncode == 2
    assert "none of the 1 most recently used HighLevel tokens decrypts" in result.stderr
    assert "textback rotate-keys" in result.stderr and replaced not in result.stderr + result.stdout

    rotating = f"{replaced},{settings.token_encryption_keys[0]}"  # the new key first, the old one kept
    kept = subprocess.run([sys.executable, "-m", "workers", "--burst"], cwd=ROOT, capture_output=True, text=True,
                          env={**worker_environ, "TOKEN_ENCRYPTION_KEYS": rotating}, timeout=60)
    assert kept.returncode == 0, kept.stderr[-2000:]


@pytest.mark.parametrize("fork_per_job", ["false", "true"])
def test_event_of_a_worker_killed_mid_job_is_processed_by_another(app_context, make_event, worker_config,
                                                                  evidence_dir, start_worker, fork_per_job):
    event_id = make_event("TestSlowOnce", sleep=600)
    enqueue_event(get_redis(), event_id, attempt=0, config=worker_config)
    first = start_worker(WORKER_FORK_PER_JOB=fork_per_job)
    wait_for(lambda: (evidence_dir / "started").exists(), what="the first worker to start the job", workers=[first])
    assert load_event(event_id).status == "processing"

    # The worker, the maintenance loop (which also moves RQ's scheduled jobs), and the work horse when forking.
    assert first.kill_everything() >= (3 if fork_per_job == "true" else 2)
    killed_at = time.monotonic()
    second = start_worker(WORKER_FORK_PER_JOB=fork_per_job)
    wait_for(lambda: load_event(event_id).status == "done", what="another worker to finish the event",
             workers=[first, second])
    recovery = time.monotonic() - killed_at
    print(f"\nkill -9 mid-job (fork per job: {fork_per_job}) -> event done by another worker after {recovery:.1f} s "
          f"(dead after {worker_config.dead_after_seconds:.0f} s without a heartbeat, sweep every "
          f"{worker_config.sweep_interval_seconds} s)")

    row = load_event(event_id)
    assert row.attempts == 2
    assert row.status_reason.startswith("recovered by pid")
    killed_run, rescue_run = runs(evidence_dir)
    assert killed_run[0] == rescue_run[0] == event_id and killed_run[1] != rescue_run[1]
    assert f"event {event_id} enqueued as job {event_job_id(event_id, 1)}" in second.output()


def test_two_worker_processes_given_the_same_event_twice_run_it_once(app_context, make_event, worker_config,
                                                                     evidence_dir, start_worker):
    workers = [start_worker(), start_worker()]
    wait_for(lambda: live_worker_count() == 2, what="two workers", workers=workers)
    event_id = make_event("TestSlow", sleep=1.5)
    # The receiver's job and a (mistaken) second job for the same event, picked up side by side.
    enqueue_event(get_redis(), event_id, attempt=0, config=worker_config)
    from workers.queues import PROCESS_EVENT, WEBHOOKS_QUEUE, enqueue

    enqueue(WEBHOOKS_QUEUE, PROCESS_EVENT, event_id, connection=get_redis(), job_timeout=60, result_ttl=60,
            failure_ttl=60, job_id=f"duplicate-{event_id}")
    wait_for(lambda: load_event(event_id).status == "done", what="the event to finish", workers=workers)
    time.sleep(2.0)  # give the losing job time to run (it must find the row taken and do nothing)
    assert len(runs(evidence_dir)) == 1
    assert load_event(event_id).attempts == 1


def test_an_idle_worker_runs_an_announced_event_promptly(app_context, make_event, evidence_dir, start_worker):
    """The receiver only announces new events: the maintenance process's admitter makes the job while the
    worker is blocked waiting for one (no sweep needed: the sweeper's minimum age is seconds)."""
    from workers.queues import announce_events

    worker = start_worker(SWEEP_MIN_AGE_SECONDS="600")
    wait_for(lambda: live_worker_count() == 1, what="the worker", workers=[worker])
    time.sleep(1.0)  # let it settle into its blocking wait
    event_id = make_event("TestRecord")
    announced_at = time.monotonic()
    announce_events(get_redis(), [event_id])
    wait_for(lambda: load_event(event_id).status == "done", what="the announced event", workers=[worker],
             timeout=30)
    assert time.monotonic() - announced_at < 5
    assert [r[0] for r in runs(evidence_dir)] == [event_id]


def test_sigterm_lets_the_current_job_finish(app_context, make_event, worker_config, evidence_dir, start_worker):
    worker = start_worker()
    wait_for(lambda: live_worker_count() == 1, what="the worker", workers=[worker])
    event_id = make_event("TestSlow", sleep=2.0)
    enqueue_event(get_redis(), event_id, attempt=0, config=worker_config)
    wait_for(lambda: runs(evidence_dir), what="the job to start", workers=[worker])
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=60) == 0
    assert load_event(event_id).status == "done"


def test_the_worker_runs_below_the_web(start_worker):
    """`python -m workers` applies WORKER_NICE (workers.priority) before it forks: its maintenance child too."""
    worker = start_worker(WORKER_NICE="7")
    wait_for(lambda: "on queues" in worker.output(), what="the worker to start", workers=[worker])
    pids = wait_for(lambda: len(worker.session_pids()) >= 2 and worker.session_pids(),
                    what="the maintenance process", workers=[worker])
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in pids} == {max(7, own)}
    if own < 7:
        assert f"nice {own} -> 7 (WORKER_NICE)" in worker.output()


def test_the_follow_up_process_runs_below_the_webhook_process(app_context, start_worker):
    """With two processes, the one taking no webhook events lowers itself to WORKER_FOLLOW_UP_NICE: on a saturated
    machine the next caller's text is scheduled before the last call's CRM follow-up."""
    supervisor = start_worker(WORKER_PROCESSES="2", WORKER_NICE="7", WORKER_FOLLOW_UP_NICE="12")
    workers = wait_for(lambda: len(_workers()) == 2 and _workers(), what="two worker processes",
                       workers=[supervisor])
    own = os.getpriority(os.PRIO_PROCESS, 0)
    nice_of = {tuple(worker.queue_names()): os.getpriority(os.PRIO_PROCESS, worker.pid) for worker in workers}
    assert nice_of == {("webhooks",): max(7, own), ("default", "low"): max(12, own)}


def _workers() -> list[Worker]:
    return Worker.all(connection=get_redis())


def _worker_pids() -> set[int]:
    return {worker.pid for worker in Worker.all(connection=get_redis())}


def test_several_worker_processes_share_the_work_and_one_that_dies_is_started_again(
        app_context, make_event, worker_config, evidence_dir, start_worker):
    """WORKER_PROCESSES=2: one supervisor, two RQ workers; a killed one comes back, SIGTERM stops them all."""
    supervisor = start_worker(WORKER_PROCESSES="2")
    first = wait_for(lambda: len(_worker_pids()) == 2 and _worker_pids(), what="two worker processes",
                     workers=[supervisor])
    assert supervisor.pid not in first
    events = [make_event("TestSlow", sleep=1.0) for _ in range(4)]
    for event_id in events:
        enqueue_event(get_redis(), event_id, attempt=0, config=worker_config)
    wait_for(lambda: all(load_event(e).status == "done" for e in events), what="the events", workers=[supervisor])

    victim = sorted(first)[0]
    os.kill(victim, signal.SIGKILL)
    # The dead one stays registered in Redis until its TTL runs out; a new, live one joins it.
    wait_for(lambda: any(Path(f"/proc/{pid}").exists() for pid in _worker_pids() - first),
             what="the killed worker replaced", workers=[supervisor], timeout=60)
    assert "starting it again" in supervisor.output()

    supervisor.process.send_signal(signal.SIGTERM)
    assert supervisor.process.wait(timeout=60) == 0
    assert supervisor.session_pids() == []
