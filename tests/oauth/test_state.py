"""The consent state: single-use, expiring, and constant-time compared."""

from __future__ import annotations

from datetime import timedelta

from integration.db import utcnow
from oauth.state import OAuthStateStore, states_match


def test_a_state_is_consumed_exactly_once(database):
    states = OAuthStateStore(database)
    state = states.issue()
    assert len(state) >= 32
    assert states.consume(state) is True
    assert states.consume(state) is False


def test_unknown_empty_and_oversized_states_are_refused(database):
    states = OAuthStateStore(database)
    states.issue()
    assert states.consume("not-a-state-we-issued") is False
    assert states.consume("") is False
    assert states.consume("x" * 5000) is False


def test_an_expired_state_is_refused(database):
    now = [utcnow()]
    states = OAuthStateStore(database, ttl=timedelta(minutes=10), clock=lambda: now[0])
    state = states.issue()
    now[0] += timedelta(minutes=10, seconds=1)
    assert states.consume(state) is False


def test_states_are_unique(database):
    states = OAuthStateStore(database)
    assert len({states.issue() for _ in range(50)}) == 50


def test_states_match():
    assert states_match("abc", "abc")
    assert not states_match("abc", "abd")
    assert not states_match("abc", None)
    assert not states_match(None, "abc")
    assert not states_match("", "")
