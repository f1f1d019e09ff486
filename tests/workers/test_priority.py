"""Workers lower their CPU priority below the web's (workers.priority), in each kind of session.

Each case runs in a child interpreter: a process cannot raise its priority back (unprivileged), so the
test process itself must stay untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from integration.config import ConfigError
from workers.config import WorkerConfig, load_worker_config

ROOT = Path(__file__).resolve().parents[2]
AUTOGROUP = Path("/proc/self/autogroup")
PROBE = """
import json, os, sys
from pathlib import Path
from workers.priority import lower_cpu_priority
start = int(sys.argv[2])
if start:
    os.setpriority(os.PRIO_PROCESS, 0, start)
changes = lower_cpu_priority(int(sys.argv[1]))
group = Path("/proc/self/autogroup")
print(json.dumps({"changes": changes, "nice": os.getpriority(os.PRIO_PROCESS, 0),
                  "group_nice": int(group.read_text().split()[-1]) if group.exists() else None}))
"""


def probe(nice: int, *, own_session: bool, start_nice: int = 0) -> dict:
    answer = subprocess.run([sys.executable, "-c", PROBE, str(nice), str(start_nice)], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True, start_new_session=own_session)
    return json.loads(answer.stdout)


def own_nice() -> int:
    """Children start at the test process's nice value (0 unless the suite itself was started with `nice`)."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def lowered(to: int) -> list[str]:
    return [f"nice {own_nice()} -> {to}"] if own_nice() < to else []


def own_group_nice() -> int | None:
    return int(AUTOGROUP.read_text().split()[-1]) if AUTOGROUP.exists() else None


def test_a_session_leader_lowers_itself_and_its_scheduling_group():
    """A worker started in a session of its own (setsid, a process manager): nice alone would not count."""
    result = probe(10, own_session=True)
    assert result["nice"] == max(10, own_nice())
    if own_group_nice() is None:  # a kernel without autogroup scheduling: only the process's nice exists
        assert result["group_nice"] is None and result["changes"] == lowered(10)
    else:  # a new session starts a new group, at nice 0
        assert result["group_nice"] == 10
        assert result["changes"] == [*lowered(10), "session's scheduling group nice 0 -> 10"]


def test_a_worker_sharing_the_session_leaves_the_group_alone():
    """The group then holds the web (and this test) too: lowering it would lower them as well."""
    before = own_group_nice()
    result = probe(10, own_session=False)
    assert result["nice"] == max(10, own_nice()) and result["changes"] == lowered(10)
    assert result["group_nice"] == before == own_group_nice()


def test_it_never_raises_a_priority_someone_lowered_further():
    result = probe(10, own_session=True, start_nice=15)
    assert result["nice"] == 15
    assert not any(change.startswith("nice") for change in result["changes"])


def test_zero_changes_nothing():
    result = probe(0, own_session=True)
    assert result == {"changes": [], "nice": own_nice(), "group_nice": result["group_nice"]}
    assert result["group_nice"] in (None, 0)


def test_worker_nice_defaults_to_ten_and_is_read_from_the_environment():
    assert WorkerConfig().cpu_nice == load_worker_config({}).cpu_nice == 10
    assert load_worker_config({"WORKER_NICE": "0"}).cpu_nice == 0
    assert load_worker_config({"WORKER_NICE": "19"}).cpu_nice == 19


@pytest.mark.parametrize("value", ["20", "-1", "low"])
def test_bad_worker_nice_names_the_variable(value):
    with pytest.raises(ConfigError, match="WORKER_NICE"):
        load_worker_config({"WORKER_NICE": value})

