"""The process groups' directories for prometheus_client's multiprocess mode (integration.metrics says why).

Kept apart from integration.metrics because it must run before prometheus_client is imported: the library
chooses between in-process and multiprocess values once, when first imported, from PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
from collections.abc import MutableMapping
from pathlib import Path

__all__ = ["BASE_ENV", "GROUP_NAME", "MULTIPROC_ENV", "prepare_process_group", "remove_process_group"]

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Where the process groups live; set by prepare_process_group, after which PROMETHEUS_MULTIPROC_DIR names the group.
BASE_ENV = "TEXTBACK_METRICS_BASE"
GROUP_NAME = re.compile(r"^(?P<role>[a-z]+)-(?P<pid>\d+)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def prepare_process_group(role: str, *, environ: MutableMapping[str, str] = os.environ,
                          instance_path: str | None = None) -> Path:
    """Make this process the parent of a process group: an empty `<base>/<role>-<pid>`, named in
    PROMETHEUS_MULTIPROC_DIR for every process it forks or starts. Groups under the base whose parent is gone
    (killed) are removed. Call before anything imports prometheus_client. Returns the group's directory."""
    instance = instance_path or environ.get("TEXTBACK_INSTANCE_PATH") or Path.cwd() / "instance"
    base = Path(environ.get(BASE_ENV) or environ.get(MULTIPROC_ENV) or Path(instance) / "metrics").resolve()
    base.mkdir(parents=True, exist_ok=True)
    for entry in base.iterdir():
        match = GROUP_NAME.match(entry.name)
        if match and entry.is_dir() and int(match["pid"]) != os.getpid() and not _alive(int(match["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
    group = base / f"{role}-{os.getpid()}"
    shutil.rmtree(group, ignore_errors=True)
    group.mkdir()
    environ[BASE_ENV] = str(base)
    environ[MULTIPROC_ENV] = str(group)
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        log.warning("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set: this process's "
                    "counters stay its own")
    return group


def remove_process_group(group: Path | str | None = None) -> None:
    """At a clean stop of the group's parent: its series end with it."""
    group = group or os.environ.get(MULTIPROC_ENV)
    if group and GROUP_NAME.match(Path(group).name):
        shutil.rmtree(group, ignore_errors=True)
