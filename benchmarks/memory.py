"""Resident memory of a benchmark's child process groups, sampled in the background: the peak is what a host
must provision for (issue 13: the worker, with its maintenance process, within 400 MB)."""

from __future__ import annotations

import os
import threading

__all__ = ["RssPeak", "session_rss_bytes"]


def _kib(path: str, field: bytes) -> int:
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _rss_bytes(pid: str) -> int:
    return _kib(f"/proc/{pid}/status", b"VmRSS:")


def _pss_bytes(pid: str) -> int:
    """Proportional set size: pages shared with other processes (a fork's copy-on-write) counted once in all."""
    return _kib(f"/proc/{pid}/smaps_rollup", b"Pss:")


def _session_of(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode(errors="replace")
        return int(stat[stat.rindex(")") + 2:].split()[3])
    except (OSError, ValueError, IndexError):
        return None


def session_rss_bytes(session_id: int, *, proportional: bool = False) -> int:
    """Summed RSS (or PSS) of every process in the session `session_id` (a Stack child and what it forked)."""
    measure = _pss_bytes if proportional else _rss_bytes
    return sum(measure(pid) for pid in os.listdir("/proc") if pid.isdigit() and _session_of(pid) == session_id)


class RssPeak:
    """`with RssPeak([sid, ...]) as peak:` samples every `interval` s; `peak.bytes` is the highest sum seen."""

    def __init__(self, session_ids: list[int], *, interval: float = 1.0) -> None:
        self.session_ids = session_ids
        self.interval = interval
        self.bytes = 0
        # The same with pages the forked processes share counted once: what they take from the machine.
        self.pss_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def sample(self) -> int:
        total = sum(session_rss_bytes(sid) for sid in self.session_ids)
        self.bytes = max(self.bytes, total)
        self.pss_bytes = max(self.pss_bytes, sum(session_rss_bytes(sid, proportional=True)
                                                 for sid in self.session_ids))
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> RssPeak:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()
