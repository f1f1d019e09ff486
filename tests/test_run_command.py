"""`textback run` (the README's first command) serves the app and the sandbox, and Ctrl-C leaves nothing behind."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from integration.embedded_redis import free_port


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_run_serves_everything_and_stops_cleanly(tmp_path):
    port, sandbox_port = free_port(), free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(
        [sys.executable, "-m", "integration.cli", "run", "--port", str(port), "--sandbox-port", str(sandbox_port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(output)
        assert "Press Ctrl-C" in text, text
        urls = re.findall(r"http://localhost:\d+/\S*", text)
        assert f"http://localhost:{sandbox_port}/" in urls
        assert f"http://localhost:{port}/oauth/install" in urls
        for url in urls:
            response = requests.get(url, timeout=10, allow_redirects=False)
            assert response.status_code < 500, (url, response.status_code)
        assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10).json() == {"status": "ok"}
        family = _descendants(process.pid)
        assert len(family) >= 4, "expected Redis, sandbox, web and worker processes"
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(output) + rest
    assert "no process left running" in rest
    time.sleep(0.5)
    assert not [pid for pid in family if _alive(pid)], "processes left behind"
