"""Run the sandbox over real HTTP: in a background thread (tests, the run command) or blocking (CLI)."""

from __future__ import annotations

import logging
import os
import threading

from werkzeug.serving import ThreadedWSGIServer

from integration.sandbox import create_sandbox_app

__all__ = ["SandboxServer", "serve"]

log = logging.getLogger(__name__)


class _ManyConnectionsServer(ThreadedWSGIServer):
    """A thread per connection (no cap on threads) and a deep listen queue.

    With the latency model on, a hundred requests or more wait at once (20 calls/s x 5 API calls x up to a
    second). Each has its own thread, so they wait side by side; the queue only holds connections not yet
    accepted, but werkzeug's 128 is small for a burst of new connections while the CPU is busy, and a
    dropped SYN costs the client a silent second or more that a benchmark would blame on us.
    """

    request_queue_size = 1024


class SandboxServer:
    """A threaded werkzeug server for the sandbox. `port=0` picks a free port.

        with SandboxServer(instance_path=tmp) as sandbox:
            requests.get(sandbox.url + "/_sandbox/config")
    """

    def __init__(self, *, port: int = 0, host: str = "127.0.0.1", instance_path: str | os.PathLike,
                 **options) -> None:
        self.app = create_sandbox_app(instance_path=instance_path, **options)
        self._server = _ManyConnectionsServer(host, port, self.app)
        self._thread: threading.Thread | None = None

    @property
    def state(self):
        """The sandbox's in-memory state (for in-process inspection)."""
        return self.app.extensions["sandbox"]

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{self._server.server_address[0]}:{self.port}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="sandbox-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.state.dispatcher.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def serve(*, host: str = "127.0.0.1", port: int = 5001, instance_path: str | os.PathLike, **options) -> None:
    """Serve the sandbox until interrupted (used by `textback sandbox` and the run command)."""
    server = SandboxServer(host=host, port=port, instance_path=instance_path, **options)
    log.info("HighLevel sandbox on %s (webhooks to %s)", server.url, server.state.config.webhook_url)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()
        server.state.dispatcher.stop()
