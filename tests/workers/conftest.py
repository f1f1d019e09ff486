"""Fixtures for worker tests: test-only handlers, a pushed app context, and inbox rows on demand."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from integration.extensions import db
from integration.inbox import StoredEvent, store_event
from tests.workers.fixture_handlers import TEST_HANDLERS
from workers import handlers
from workers.config import WorkerConfig, set_worker_config


@pytest.fixture
def test_handlers(monkeypatch):
    """Register the test-only event types (TestRecord, TestFail, ...) in the handler registry."""
    monkeypatch.setattr(handlers, "HANDLERS", {**handlers.HANDLERS, **TEST_HANDLERS})
    return TEST_HANDLERS


@pytest.fixture
def worker_config() -> WorkerConfig:
    """Defaults, with the sweeper's minimum age at zero so tests need not wait for it."""
    return WorkerConfig().override(sweep_min_age_seconds=0.0)


@pytest.fixture
def app_context(app, worker_config, test_handlers):
    set_worker_config(app, worker_config)
    with app.app_context():
        yield app


@pytest.fixture
def evidence_dir(tmp_path):
    return tmp_path


@pytest.fixture
def make_event(app_context, evidence_dir) -> Callable[..., int]:
    """Insert a pending inbox row of `event_type` whose payload points handlers at `evidence_dir`."""

    def make(event_type: str = "TestRecord", *, status: str = "pending", **fields) -> int:
        payload = {"type": event_type, "evidence_dir": str(evidence_dir), "webhookId": str(uuid.uuid4()), **fields}
        with db.transaction() as session:
            receipt = store_event(session, StoredEvent(
                dedupe_key=payload["webhookId"], event_type=event_type, company_id=None, location_id=None,
                payload=payload, status=status, status_reason=None))
        return receipt.event_id

    return make
