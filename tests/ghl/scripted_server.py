"""A tiny HTTP server for the client's error-path tests: it answers from a script and records requests.

The sandbox is the faithful HighLevel; this server exists to produce the answers a faithful server
rarely gives on demand (a stalled body, a reset connection, an HTML page from a proxy) with exact
control over each one. Each queued `Reply` answers one request, in order; when the script runs out
the server answers 599 so an unexpected extra request is visible in the test.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """One scripted answer. `action`: "respond" (default), "stall" (sleep `delay` before answering),
    or "reset" (drop the connection with a TCP RST after reading the request)."""

    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes -> sent as is; None -> empty body
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "respond"
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if self.body is None:
            return b"", self.headers.get("Content-Type", "application/json")
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        raw = self.body.encode() if isinstance(self.body, str) else self.body
        return raw, self.headers.get("Content-Type", "text/plain")


def json_reply(body: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status=status, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()})


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


class ScriptedServer:
    """Start with `start()` (or as a context manager); `url` is the base URL; `requests` the recorded log."""

    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                with outer._lock:
                    outer.requests.append(Recorded(self.command, parts.path, parse_qs(parts.query),
                                                   dict(self.headers.items()), body))
                    reply = outer.script.popleft() if outer.script else Reply(599, {"message": "script exhausted"})
                if reply.action == "reset":
                    # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if reply.action == "stall":
                    outer._stopping.wait(reply.delay)
                raw, content_type = reply.encoded()
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": content_type, **reply.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout); nothing to answer

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def queue(self, *replies: Reply) -> ScriptedServer:
        self.script.extend(replies)
        return self

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
