"""A throwaway Redis for local runs and tests when REDIS_URL is unset.

Prefers a real `redis-server` from PATH (started on a free loopback port, persisting nothing);
falls back to fakeredis's pure-Python TCP server so a machine without Redis still works.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

import redis

__all__ = ["EmbeddedRedis", "free_port"]

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class EmbeddedRedis:
    """Start with `start()`, stop with `stop()`; `url` is valid in between."""

    port: int = 0
    kind: str = ""
    _process: subprocess.Popen | None = field(default=None, repr=False)
    _server: object = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _dir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.port = self.port or free_port()
        binary = shutil.which("redis-server")
        if binary:
            self._dir = tempfile.TemporaryDirectory(prefix="textback-redis-")
            self._process = subprocess.Popen(  # noqa: S603 - fixed arguments, binary from PATH
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self._dir.name, "--daemonize", "no", "--loglevel", "warning"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.kind = "redis-server"
        else:
            from fakeredis import TcpFakeServer

            self._server = TcpFakeServer(("127.0.0.1", self.port), server_type="redis")
            self._thread = threading.Thread(target=self._server.serve_forever, name="embedded-redis", daemon=True)
            self._thread.start()
            self.kind = "fakeredis"
        self._wait_ready()
        log.info("embedded Redis (%s) on %s", self.kind, self.url)
        return self

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self._process is not None and self._process.poll() is not None:
                        raise RuntimeError(f"redis-server exited with code {self._process.returncode}") from None
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"embedded Redis did not answer on port {self.port}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
