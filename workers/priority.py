"""Run the workers below the web processes' CPU priority, so a saturated machine answers webhooks first.

HighLevel drops a webhook it cannot deliver in time, while a job that waits a little still texts the caller:
on a machine shared by gunicorn and `python -m workers` (the Procfile on one host, `textback run`), the
acknowledgement must win. The workers catch up in the idle time; at nice 10 they still get about a tenth of
a contended core (CFS weights 110 : 1024), so they are slowed, never starved.
What nice cannot do: cap the CPU of a worker that mostly waits on round trips. In a webhook flood on the
2-core benchmark machine (kernel 6.18) the two workers took 0.24 cores at nice 10 and at nice 19 alike
(benchmarks/webhook_pipeline.py, issue 4's note): a task that sleeps between short bursts runs when it
wakes, whatever its weight. Their share is kept down by doing less per event (workers.admitter).

Two knobs, because Linux applies `nice` only among processes of the same scheduling group:
- the process's own nice value: enough when web and workers share a group (one session, one container);
- its autogroup's nice value, only when this process leads its own session (a service started with
  `setsid`, a process manager's child): the kernel then gives each session a fair share of its own
  whatever the processes' nice values, and only the group's nice value lowers the worker's share.
  When the session is shared, the group holds the web too, and lowering it would lower the web as well.
Under systemd or Kubernetes, set the cgroup's CPU weight instead (CPUWeight=, cpu requests): the README says how.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["lower_cpu_priority", "scheduling_group_nice"]

AUTOGROUP = Path("/proc/self/autogroup")


def scheduling_group_nice(path: Path = AUTOGROUP) -> int | None:
    """The nice value of this process's autogroup, or None when it has none.

    The file reads "/autogroup-85 nice 0" when the process is scheduled in an autogroup. It exists but is
    empty when the process sits in a CPU cgroup of its own (containers, CI runners, systemd slices): the
    kernel then ignores autogroups, and there is no group nice to read or to raise.
    """
    try:
        fields = path.read_text().split()
    except OSError:  # no autogroup support (the file is missing) or /proc unreadable
        return None
    if len(fields) != 3 or fields[1] != "nice":
        return None
    try:
        return int(fields[2])
    except ValueError:
        return None


def lower_cpu_priority(nice: int) -> list[str]:
    """Raise this process's nice value to `nice` (never lowers it); returns what was changed, for the log."""
    if nice <= 0 or not hasattr(os, "getpriority"):
        return []
    changed: list[str] = []
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current < nice:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
            changed.append(f"nice {current} -> {nice}")
    group_nice = scheduling_group_nice(AUTOGROUP) if os.getsid(0) == os.getpid() else None
    if group_nice is not None and group_nice < nice:
        with contextlib.suppress(OSError):
            AUTOGROUP.write_text(str(nice))
            changed.append(f"session's scheduling group nice {group_nice} -> {nice}")
    return changed
