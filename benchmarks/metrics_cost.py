"""What one metric update costs on the hot paths, in multiprocess mode (as gunicorn and the workers run) and in one
process: `python -m benchmarks.metrics_cost`. Prints microseconds per call."""

from __future__ import annotations

import os
import sys
import tempfile
import time

N = 100_000


def main() -> None:
    if "--in-process" not in sys.argv:
        from integration.metrics_dir import prepare_process_group

        prepare_process_group("bench", environ=os.environ, instance_path=tempfile.mkdtemp())
    from integration import metrics

    mode = "multiprocess (mmap files)" if metrics.multiprocess() else "one process (in memory)"
    cases = {
        "webhook_answered (labels + inc)": lambda: metrics.webhook_answered("InboundMessage", "stored"),
        "ack histogram observe": lambda: metrics.WEBHOOK_ACK_SECONDS.observe(0.004),
        "ghl_request (template + counter + histogram)": lambda: metrics.ghl_request(
            "GET", "/contacts/abc123", 200, time.perf_counter()),
        "text_finished skipped (category + 2 counters)": lambda: metrics.text_finished(
            "skipped", "skipped: texted this caller 2 h ago"),
    }
    print(f"{mode}, {N} calls each")
    for name, call in cases.items():
        call()
        started = time.perf_counter()
        for _ in range(N):
            call()
        print(f"  {name}: {(time.perf_counter() - started) / N * 1e6:.2f} us")


if __name__ == "__main__":
    main()
