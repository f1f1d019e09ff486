"""HTTP load for the benchmarks: an open-loop sender that holds a rate, and a closed-loop one that finds a ceiling.

Both use keep-alive `http.client` connections (one per sender thread): requests' per-call overhead
would make the load generator, which shares the machine's cores with what it measures, the bottleneck.

Open loop: request i is due at start + i / rate whatever happened to earlier ones; a pool of sender
threads much larger than rate x latency takes them in order. Each result keeps its due time, so the
slip between due and sent shows whether the generator held the rate.

Closed loop: N clients each send the next request as soon as the previous answer arrives, spread
over a few processes so one interpreter's lock does not cap the rate; completions are counted in
a window that starts after a warm-up.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import multiprocessing
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["CeilingResult", "Sent", "closed_loop", "open_loop", "percentile"]

_TIMEOUT = 30.0
_STALE_KEEP_ALIVE = (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected)


@dataclass(frozen=True)
class Sent:
    """One open-loop request: when it was due and sent (perf_counter), answered, and the wall clock at send."""

    index: int
    due: float
    started: float
    finished: float
    sent_wall: float
    status: int | None
    error: str | None

    @property
    def latency(self) -> float:
        return self.finished - self.started

    @property
    def slip(self) -> float:
        return self.started - self.due


@dataclass(frozen=True)
class CeilingResult:
    """Closed-loop outcome: answers counted in the measuring window, by status."""

    seconds: float
    statuses: dict[int | str, int]
    latencies: list[float]

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (fraction in 0..1) of a non-empty sequence."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


class _Connection:
    """A keep-alive connection that reconnects after any error."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname, parts.port or 80, parts.path or "/"
        self._conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        reused = self._conn is not None
        try:
            return self._post_once(body, headers)
        except _STALE_KEEP_ALIVE:
            # The server closed the idle connection (gunicorn's keep-alive timeout) before our request
            # reached it, so nothing was processed: reconnect and send once more, as urllib3 does.
            if not reused:
                raise
            return self._post_once(body, headers)

    def _post_once(self, body: bytes, headers: dict[str, str]) -> int:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=_TIMEOUT)
        try:
            self._conn.request("POST", self.path, body=body, headers=headers)
            response = self._conn.getresponse()
            response.read()
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def open_loop(url: str, requests: Sequence[tuple[bytes, dict[str, str]]], *, rate: float, start_wall: float,
              senders: int = 32) -> list[Sent]:
    """Send `requests` to `url` at `rate` per second from `start_wall` (epoch seconds, in the future), open loop.

    Returns one Sent per request, in order. Request i goes at start_wall + i / rate, the instant the
    caller can stamp into its body beforehand.

    Raises:
        ValueError: `start_wall` has already passed (preparing the requests took longer than planned).
    """
    lead_in = start_wall - time.time()
    if lead_in <= 0:
        raise ValueError(f"start_wall passed {-lead_in:.3f} s ago; plan a later start")
    counter = itertools.count()
    lock = threading.Lock()
    results: list[Sent | None] = [None] * len(requests)
    start = time.perf_counter() + lead_in

    def sender() -> None:
        connection = _Connection(url)
        try:
            while True:
                with lock:
                    index = next(counter)
                if index >= len(requests):
                    return
                due = start + index / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                body, headers = requests[index]
                started, wall = time.perf_counter(), time.time()
                status = error = None
                try:
                    status = connection.post(body, headers)
                except Exception as exc:
                    error = type(exc).__name__
                results[index] = Sent(index, due, started, time.perf_counter(), wall, status, error)
        finally:
            connection.close()

    threads = [threading.Thread(target=sender, name=f"open-loop-{n}", daemon=True) for n in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r for r in results if r is not None]


def _closed_loop_process(url: str, requests: Sequence[tuple[bytes, dict[str, str]]], clients: int,
                         window_start: float, window_end: float) -> tuple[dict, list[float]]:
    """One process's share: `clients` threads hammering `url` until `window_end` (wall clock)."""
    counter = itertools.count()
    lock = threading.Lock()
    statuses: dict[int | str, int] = {}
    latencies: list[float] = []

    def client() -> None:
        connection = _Connection(url)
        try:
            while time.time() < window_end:
                with lock:
                    body, headers = requests[next(counter) % len(requests)]
                started = time.perf_counter()
                try:
                    outcome: int | str = connection.post(body, headers)
                except Exception as exc:
                    outcome = type(exc).__name__
                finished_wall = time.time()
                if window_start <= finished_wall < window_end:
                    with lock:
                        statuses[outcome] = statuses.get(outcome, 0) + 1
                        latencies.append(time.perf_counter() - started)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses, latencies


def closed_loop(url: str, request_sets: Sequence[Sequence[tuple[bytes, dict[str, str]]]], *, clients: int,
                seconds: float, warm_up: float = 2.0) -> CeilingResult:
    """`clients` concurrent keep-alive clients split over len(request_sets) processes, each cycling its own set.

    Counts answers that arrive within `seconds` after a `warm_up`.
    """
    processes = len(request_sets)
    shares = [clients // processes + (1 if n < clients % processes else 0) for n in range(processes)]
    context = multiprocessing.get_context("spawn")
    # Spawned interpreters take a second or two to start: schedule the window after that.
    window_start = time.time() + 3.0 + warm_up
    window_end = window_start + seconds
    with context.Pool(processes) as pool:
        parts = pool.starmap(_closed_loop_process,
                             [(url, request_sets[n], shares[n], window_start, window_end) for n in range(processes)])
    statuses: dict[int | str, int] = {}
    latencies: list[float] = []
    for part_statuses, part_latencies in parts:
        for key, count in part_statuses.items():
            statuses[key] = statuses.get(key, 0) + count
        latencies.extend(part_latencies)
    return CeilingResult(seconds, statuses, latencies)
