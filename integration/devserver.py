"""`textback run`: the whole product on one machine, for a newcomer and for demos.

Starts (in order) an embedded Redis when REDIS_URL is unset, migrates the database, then the
sandbox, the web app (gunicorn) and a worker as child processes. Prints the URLs to open, runs
until Ctrl-C or until a child dies, and then stops every child's process group so nothing is
left behind.
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

import redis
import requests

from integration.cli import StartupError, describe_connection_error
from integration.config import load_settings
from integration.embedded_redis import EmbeddedRedis
from integration.migrate import upgrade

__all__ = ["run_all"]


@dataclass
class Child:
    name: str
    process: subprocess.Popen


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_http(url: str, child: Child, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            code = child.process.returncode
            raise StartupError(f"{child.name} exited during start-up (code {code}); see its log above")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise StartupError(f"{child.name} did not answer on {url} within {timeout:.0f} s")


def _spawn(name: str, argv: list[str], env: dict[str, str]) -> Child:
    # A new session per child: we stop each one's whole process group (gunicorn's workers, RQ's
    # work horses) ourselves, in order, instead of relying on the terminal's Ctrl-C reaching them.
    process = subprocess.Popen(argv, env=env, start_new_session=True)  # noqa: S603 - our own interpreter
    return Child(name, process)


def _stop(children: list[Child]) -> None:
    for child in reversed(children):
        if child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for child in reversed(children):
        remaining = max(0.1, deadline - time.monotonic())
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=remaining)
        # Kill whatever is left in the group (a stuck work horse), even if the leader exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)
        child.process.wait()


def run_all(*, port: int = 5000, sandbox_port: int = 5001, web_workers: int = 2) -> None:
    base_env = dict(os.environ)
    base_env.setdefault("PUBLIC_BASE_URL", f"http://localhost:{port}")
    base_env.setdefault("TEXTBACK_SANDBOX_URL", f"http://localhost:{sandbox_port}")
    settings = load_settings(base_env)
    base_env["TEXTBACK_INSTANCE_PATH"] = settings.instance_path

    for wanted in ([port, sandbox_port] if settings.sandbox_mode else [port]):
        if not _port_free(wanted):
            raise StartupError(f"port {wanted} is already in use (another textback run?); choose one with --port")

    embedded: EmbeddedRedis | None = None
    children: list[Child] = []
    interrupted = False

    def on_stop_signal(_signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_stop_signal)
    # A shell starting us in the background sets SIGINT to "ignore"; Ctrl-C must still stop us.
    previous_int = signal.signal(signal.SIGINT, on_stop_signal)
    try:
        try:
            upgrade(settings.database_url)
        except Exception as exc:
            raise StartupError(f"cannot prepare the database: {describe_connection_error(exc)}") from None
        if settings.redis_url:
            try:
                redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2).ping()
            except redis.RedisError as exc:
                raise StartupError(f"cannot reach Redis at REDIS_URL: {describe_connection_error(exc)}") from None
        else:
            embedded = EmbeddedRedis().start()
            base_env["REDIS_URL"] = embedded.url
        base_env["DATABASE_URL"] = settings.database_url

        python = sys.executable
        if settings.sandbox_mode:
            children.append(_spawn("sandbox", [python, "-m", "integration.cli", "sandbox", "--port", str(sandbox_port)],
                                   base_env))
            _wait_http(f"http://127.0.0.1:{sandbox_port}/", children[-1])
        children.append(_spawn("web", [python, "-m", "gunicorn", "-c", "python:integration.gunicorn_conf",
                                       "integration.wsgi:app", "--bind",
                                       f"127.0.0.1:{port}", "--workers", str(web_workers), "--threads", "4",
                                       "--access-logfile", "-"], base_env))
        children.append(_spawn("worker", [python, "-m", "workers"], base_env))
        _wait_http(f"http://127.0.0.1:{port}/healthz", children[1])

        _print_banner(settings.public_base_url if "PUBLIC_BASE_URL" in os.environ else f"http://localhost:{port}",
                      sandbox_port if settings.sandbox_mode else None, embedded)
        while True:
            for child in children:
                if child.process.poll() is not None:
                    raise StartupError(f"{child.name} stopped (exit code {child.process.returncode}); shutting down")
            time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        _stop(children)
        if embedded is not None:
            embedded.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        if interrupted:
            print("\ntextback: stopped; no process left running.", flush=True)


def _print_banner(app_url: str, sandbox_port: int | None, embedded: EmbeddedRedis | None) -> None:
    lines = ["", "TextBack for HighLevel is running. Open:"]
    if sandbox_port:
        lines.append(f"  Simulated HighLevel (place a missed call here): http://localhost:{sandbox_port}/")
    lines += [
        f"  Install the app (OAuth consent):                 {app_url}/oauth/install",
        f"  The app page:                                    {app_url}/app",
        f"  Health / readiness / metrics:                    {app_url}/healthz  {app_url}/readyz  {app_url}/metrics",
    ]
    if embedded is not None:
        lines.append(f"  (embedded Redis: {embedded.kind} on {embedded.url})")
    lines.append("Press Ctrl-C to stop everything.")
    print("\n".join(lines), flush=True)
