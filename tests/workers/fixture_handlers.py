"""Handlers for test-only event types (registered into HANDLERS by monkeypatch or by run_worker.py).

They leave evidence in files named by the payload (`evidence_dir`), because the worker processes that
run them are not the test process. Every handler appends "<event id> <pid>" to `runs.log` first.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from workers.errors import EventIgnored, PermanentEventError, RetryLater

TEST_HANDLERS = {
    "TestRecord": "tests.workers.fixture_handlers:record",
    "TestSlowOnce": "tests.workers.fixture_handlers:slow_first_time",
    "TestSlow": "tests.workers.fixture_handlers:slow",
    "TestFail": "tests.workers.fixture_handlers:fail",
    "TestFailTwice": "tests.workers.fixture_handlers:fail_twice",
    "TestPermanent": "tests.workers.fixture_handlers:permanent",
    "TestIgnore": "tests.workers.fixture_handlers:ignore",
    "TestRetryLater": "tests.workers.fixture_handlers:retry_later",
    "TestWindow": "tests.workers.fixture_handlers:windowed",
}


def _log_run(payload: dict, event_id: int) -> Path:
    folder = Path(payload["evidence_dir"])
    with open(folder / "runs.log", "a") as handle:
        handle.write(f"{event_id} {os.getpid()}\n")
    return folder


def runs(folder: Path) -> list[tuple[int, int]]:
    """(event id, pid) of every handler run recorded in `folder`."""
    path = Path(folder) / "runs.log"
    if not path.exists():
        return []
    return [tuple(int(x) for x in line.split()) for line in path.read_text().splitlines() if line.strip()]


def record(payload: dict, *, event_id: int) -> str:
    _log_run(payload, event_id)
    return f"recorded by pid {os.getpid()}"


def slow_first_time(payload: dict, *, event_id: int) -> str:
    """The first run announces itself in `started` and sleeps (to be killed); later runs return at once."""
    folder = _log_run(payload, event_id)
    marker = folder / "started"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(float(payload.get("sleep", 300)))
    return f"recovered by pid {os.getpid()}"


def slow(payload: dict, *, event_id: int) -> str:
    _log_run(payload, event_id)
    time.sleep(float(payload.get("sleep", 1.0)))
    return f"slow run by pid {os.getpid()}"


def fail(payload: dict, *, event_id: int) -> str:
    _log_run(payload, event_id)
    raise RuntimeError("boom: the CRM said no")


def fail_twice(payload: dict, *, event_id: int) -> str:
    folder = _log_run(payload, event_id)
    if len(runs(folder)) <= 2:
        raise ConnectionError("sandbox unreachable")
    return "third time lucky"


def permanent(payload: dict, *, event_id: int) -> str:
    _log_run(payload, event_id)
    raise PermanentEventError("contact has no phone number")


def ignore(payload: dict, *, event_id: int) -> str:
    _log_run(payload, event_id)
    raise EventIgnored("outbound call: never a missed call")


def retry_later(payload: dict, *, event_id: int) -> str:
    _log_run(payload, event_id)
    raise RetryLater("HighLevel answered 429", delay_seconds=float(payload.get("delay", 7)))


def windowed(payload: dict, *, event_id: int) -> str:
    """Sleeps `sleep` seconds and records when it ran ("<event id> <start> <end>" in windows.log)."""
    folder = _log_run(payload, event_id)
    return _record_window(folder, f"event-{event_id}", float(payload.get("sleep", 1.0)))


def windowed_job(folder: str, name: str, seconds: float) -> str:
    """A plain RQ job (not an inbox event) that sleeps and records when it ran, like `windowed`."""
    return _record_window(Path(folder), name, seconds)


def _record_window(folder: Path, name: str, seconds: float) -> str:
    started = time.time()
    time.sleep(seconds)
    with open(folder / "windows.log", "a") as handle:
        handle.write(f"{name} {started} {time.time()}\n")
    return f"{name} ran"


def windows(folder: Path) -> dict[str, tuple[float, float]]:
    """name -> (start, end) of every `windowed` run recorded in `folder`."""
    path = Path(folder) / "windows.log"
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        name, start, end = line.split()
        found[name] = (float(start), float(end))
    return found


def python_busy_job(seconds: float) -> str:
    """Runs Python for `seconds` (many short sleeps): a thread's timeout can only stop it between bytecodes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return "not stopped"
