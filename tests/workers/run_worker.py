"""`python -m tests.workers.run_worker`: `python -m workers` with the test-only event types registered.

A worker subprocess cannot see the test's monkeypatch, so this launcher patches HANDLERS itself.
"""

from __future__ import annotations

import sys

from tests.workers.fixture_handlers import TEST_HANDLERS
from workers import handlers
from workers.__main__ import main

if __name__ == "__main__":
    handlers.HANDLERS.update(TEST_HANDLERS)
    sys.exit(main(sys.argv[1:]))
