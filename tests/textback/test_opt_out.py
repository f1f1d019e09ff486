"""Opt-out replies: whole-message phrases suppress further texts; ordinary replies do not."""

from __future__ import annotations

import pytest

from integration.textback.opt_out import is_opt_in, is_opt_out


@pytest.mark.parametrize("body", ["stop", "STOP", "Stop.", "stop please", "quit", "end", "revoke", "opt out",
                                  "opt-out", "Cancel", "unsubscribe", "stopall", "STOP ALL", " stop! ",
                                  "Stop texting me", "remove me"])
def test_opt_out_phrases(body):
    assert is_opt_out(body)


@pytest.mark.parametrize("body", ["can you stop by at 3?", "don't stop now, I need a plumber", "the leak won't stop",
                                  "", None, "yes", "Hi, my water heater is leaking"])
def test_ordinary_replies_are_not_opt_outs(body):
    assert not is_opt_out(body)


@pytest.mark.parametrize(("body", "expected"), [("START", True), ("unstop", True), ("Resume.", True),
                                                ("start the job monday", False), ("stop", False)])
def test_opt_in_phrases(body, expected):
    assert is_opt_in(body) is expected
