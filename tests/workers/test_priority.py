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
from workers.priority import scheduling_group_nice

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, os, sys
from pathlib import Path
import workers.priority
from workers.priority import lower_cpu_priority, scheduling_group_nice
start = int(sys.argv[2])
if len(sys.argv) > 3:  # stand-in for /proc/self/autogroup
    workers.priority.AUTOGROUP = Path(sys.argv[3])
if start:
    os.setpriority(os.PRIO_PROCESS, 0, start)
changes = lower_cpu_priority(int(sys.argv[1]))
print(json.dumps({"changes": changes, "nice": os.getpriority(os.PRIO_PROCESS, 0),
                  "group_nice": scheduling_group_nice(workers.priority.AUTOGROUP)}))
"""


def probe(nice: int, *, own_session: bool, start_nice: int = 0, autogroup: Path | None = None) -> dict:
    arguments = [str(nice), str(start_nice), *([str(autogroup)] if autogroup else [])]
    answer = subprocess.run([sys.executable, "-c", PROBE, *arguments], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True, start_new_session=own_session)
    return json.loads(answer.stdout)


def own_nice() -> int:
    """Children start at the test process's nice value (0 unless the suite itself was started with `nice`)."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def lowered(to: int) -> list[str]:
    return [f"nice {own_nice()} -> {to}"] if own_nice() < to else []


def test_a_session_leader_lowers_itself_and_its_scheduling_group():
    """A worker started in a session of its own (setsid, a process manager): nice alone would not count."""
    result = probe(10, own_session=True)
    assert result["nice"] == max(10, own_nice())
    if result["group_nice"] is None:  # no autogroup (kernel without it, or a CPU cgroup): only nice exists
        assert result["changes"] == lowered(10)
    else:  # a new session starts a new group, at nice 0
        assert result["group_nice"] == 10
        assert result["changes"] == [*lowered(10), "session's scheduling group nice 0 -> 10"]


def test_a_worker_sharing_the_session_leaves_the_group_alone():
    """The group then holds the web (and this test) too: lowering it would lower them as well."""
    before = scheduling_group_nice()
    result = probe(10, own_session=False)
    assert result["nice"] == max(10, own_nice()) and result["changes"] == lowered(10)
    assert result["group_nice"] == before == scheduling_group_nice()


@pytest.mark.parametrize(("content", "expected"), [
    ("/autogroup-85 nice 0\n", 0),
    ("/autogroup-7 nice 10\n", 10),
    ("", None),  # the process sits in a CPU cgroup of its own: the kernel ignores autogroups
    ("garbage\n", None),
    ("/autogroup-7 nice ten\n", None),
])
def test_the_group_nice_is_read_only_from_a_well_formed_autogroup_file(tmp_path, content, expected):
    autogroup = tmp_path / "autogroup"
    autogroup.write_text(content)
    assert scheduling_group_nice(autogroup) == expected


def test_a_session_leader_in_a_cpu_cgroup_lowers_only_itself(tmp_path):
    """In a container or CI runner the autogroup file exists but is empty: nothing to raise, nothing to fail."""
    autogroup = tmp_path / "autogroup"
    autogroup.write_text("")
    result = probe(10, own_session=True, autogroup=autogroup)
    assert result["nice"] == max(10, own_nice()) and result["changes"] == lowered(10)
    assert result["group_nice"] is None and autogroup.read_text() == ""


def test_no_autogroup_file_means_no_group():
    assert scheduling_group_nice(Path("/nonexistent/autogroup")) is None


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



def test_follow_up_nice_defaults_to_fifteen_and_is_read_from_the_environment():
    assert WorkerConfig().follow_up_nice == load_worker_config({}).follow_up_nice == 15
    assert load_worker_config({"WORKER_FOLLOW_UP_NICE": "19"}).follow_up_nice == 19


@pytest.mark.parametrize("value", ["20", "-1", "lower"])
def test_bad_follow_up_nice_names_the_variable(value):
    with pytest.raises(ConfigError, match="WORKER_FOLLOW_UP_NICE"):
        load_worker_config({"WORKER_FOLLOW_UP_NICE": value})
