"""Where the CPU went during a benchmark phase: per process group, and how much was not ours.

Read from /proc (Linux). Groups: each child of the Stack (its whole session: gunicorn's workers, the
worker's maintenance process), the PostgreSQL backends connected to the benchmark's database, the
Redis server (shared with anyone else using it), this process (the load generator, with the client
processes it has reaped) and, as the remainder of the machine's busy time, everything else, which on
a shared machine includes other people's test runs and skews every figure.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass

__all__ = ["CpuSample", "CpuTimeline", "cpu_sample", "describe_cpu"]

LOAD_GENERATOR = "load generator"


@dataclass(frozen=True)
class CpuSample:
    """Busy CPU seconds of the machine and of each group, at one instant (`at`: time.perf_counter())."""

    at: float
    machine_busy: float
    groups: Counter
    load: tuple[float, float, float]


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return None


def _group_of(pid: str, session: int, sessions: dict[int, str], database_name: str | None) -> str | None:
    if session in sessions:
        return sessions[session]
    cmdline = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ")
    if database_name and cmdline.startswith("postgres:") and f" {database_name} " in cmdline:
        return f"postgresql ({database_name} backends)"
    if cmdline.startswith("redis-server") and ":6379" in cmdline:
        return "redis-server :6379 (shared)"
    return None


def cpu_sample(sessions: dict[int, str], *, database_name: str | None = None) -> CpuSample:
    """Sample now. `sessions`: session id -> group name (the Stack's children lead their own sessions)."""
    ticks = os.sysconf("SC_CLK_TCK")
    groups: Counter = Counter()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        stat = _read(f"/proc/{pid}/stat")
        if stat is None:
            continue
        # After "(comm)": state ppid pgrp session ... utime (12th) stime (13th).
        fields = stat.rsplit(")", 1)[1].split()
        group = _group_of(pid, int(fields[3]), sessions, database_name)
        if group is not None:
            groups[group] += (int(fields[11]) + int(fields[12])) / ticks
    own = os.times()
    groups[LOAD_GENERATOR] += own.user + own.system + own.children_user + own.children_system
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return CpuSample(time.perf_counter(), (sum(values) - idle) / ticks, groups, os.getloadavg())


def describe_cpu(before: CpuSample, after: CpuSample, *, per: tuple[int, str] | None = None) -> list[str]:
    """Lines: machine busy, then each group in cores, then everything else; with `per` (count, what), each
    group's CPU milliseconds per item too (load-independent where cores are not: what to compare across runs)."""
    seconds = max(after.at - before.at, 1e-9)
    busy = (after.machine_busy - before.machine_busy) / seconds
    used = {name: (after.groups[name] - before.groups.get(name, 0.0)) / seconds for name in after.groups}
    ours = sum(used.values())
    parts = ", ".join(f"{name} {cores:.2f}" for name, cores in sorted(used.items(), key=lambda kv: -kv[1])
                      if cores >= 0.005)
    lines = [f"cpu (cores): machine busy {busy:.2f} of {os.cpu_count()}, load avg {after.load[0]:.2f}",
             f"  {parts}",
             f"  everything else (other processes on the machine): {max(busy - ours, 0.0):.2f}"]
    if per is not None and per[0] > 0:
        count, what = per
        each = ", ".join(f"{name} {cores * seconds * 1000 / count:.1f}" for name, cores
                         in sorted(used.items(), key=lambda kv: -kv[1]) if cores >= 0.005)
        lines.append(f"cpu ms per {what}: {each}")
    return lines


class CpuTimeline:
    """Samples `cpu_sample` every `interval` seconds on a background thread, to line stalls up with CPU use.

        with CpuTimeline(sample) as timeline:
            ...
        timeline.cores_between(t0, t1)  # {group: cores, "machine": cores} over that stretch (perf_counter times)
    """

    def __init__(self, sample, *, interval: float = 1.0) -> None:
        self._sample = sample
        self._interval = interval
        self.samples: list[CpuSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-timeline", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self._sample())
            self._stop.wait(self._interval)

    def __enter__(self) -> CpuTimeline:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self._sample())

    def cores_between(self, start: float, end: float) -> dict[str, float]:
        """Average cores per group (and "machine", "everything else") between two time.perf_counter() instants."""
        inside = [s for s in self.samples if start - self._interval <= s.at <= end + self._interval]
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        seconds = max(last.at - first.at, 1e-9)
        cores = {name: (last.groups[name] - first.groups.get(name, 0.0)) / seconds for name in last.groups}
        cores["machine"] = (last.machine_busy - first.machine_busy) / seconds
        cores["everything else"] = max(cores["machine"] - sum(v for k, v in cores.items() if k != "machine"), 0.0)
        return cores
