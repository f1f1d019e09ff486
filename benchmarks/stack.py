"""The processes a benchmark runs against, each in its own session so it can be stopped as a group.

`Stack` starts children with their output in `<run dir>/<name>.log`, waits for them to answer over
HTTP, and stops every one of them (SIGTERM, then SIGKILL of what is left in the group) on `stop()`,
which the benchmark calls from a `finally`, so Ctrl-C leaves nothing running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

__all__ = ["Stack", "free_port"]


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class _Child:
    name: str
    process: subprocess.Popen
    log_path: Path


class Stack:
    """Child processes of one benchmark run."""

    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        self.run_dir = run_dir
        self.env = env
        self.children: list[_Child] = []

    def spawn(self, name: str, argv: list[str], *, env: dict[str, str] | None = None) -> None:
        """Start `argv` (our own interpreter's modules) in a new session, output to <name>.log."""
        log_path = self.run_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen([sys.executable, *argv], env=env or self.env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True, cwd=Path.cwd())
        self.children.append(_Child(name, process, log_path))

    def wait_http(self, name: str, url: str, *, timeout: float = 120.0) -> None:
        """Wait until `url` answers below 500; fail naming the child and its log when it dies or never answers."""
        child = next(c for c in self.children if c.name == name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise RuntimeError(f"{name} exited during start-up (code {child.process.returncode}); "
                                   f"see {child.log_path}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=2).status_code < 500:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer on {url} within {timeout:.0f} s; see {child.log_path}")

    def check_alive(self) -> None:
        """Raise if any child has exited (a benchmark against a dead process measures nothing)."""
        for child in self.children:
            if child.process.poll() is not None:
                raise RuntimeError(f"{child.name} exited (code {child.process.returncode}); see {child.log_path}")

    def pids(self, name_prefix: str) -> list[int]:
        return [c.process.pid for c in self.children if c.name.startswith(name_prefix)]

    def signal_group(self, name_prefix: str, signum: int) -> None:
        """Send `signum` to the whole process group of every child whose name starts with `name_prefix`."""
        for child in self.children:
            if child.name.startswith(name_prefix) and child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.process.pid, signum)

    @contextlib.contextmanager
    def paused(self, name_prefix: str):
        """SIGSTOP those children's groups for the block, SIGCONT after (also on error or Ctrl-C)."""
        self.signal_group(name_prefix, signal.SIGSTOP)
        try:
            yield
        finally:
            self.signal_group(name_prefix, signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM every child's group, wait up to 10 s, then SIGKILL whatever is left in each group."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    # SIGCONT first: a paused group would hold SIGTERM until killed.
                    os.killpg(child.process.pid, signal.SIGCONT)
                    os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in reversed(self.children):
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
        self.children.clear()
