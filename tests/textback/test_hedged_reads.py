"""A slow contact read is asked once more and the first answer wins (integration.textback.together.hedged)."""

from __future__ import annotations

import threading
import time

import pytest

from integration.textback.together import hedged


class Flaky:
    """A read whose first copy waits on `release` (or fails), and whose later copies answer at once."""

    def __init__(self, *, first_fails: bool = False, later_fail: bool = False) -> None:
        self.release = threading.Event()
        self.calls = 0
        self.first_fails, self.later_fail = first_fails, later_fail
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            self.calls += 1
            number = self.calls
        if number == 1:
            self.release.wait(10)
            if self.first_fails:
                raise LookupError("first copy failed")
            return "first"
        if self.later_fail:
            raise TimeoutError("second copy failed")
        return f"copy {number}"


def test_a_read_that_answers_in_time_is_made_once():
    read = Flaky()
    read.release.set()
    assert hedged(read, after=1.0)() == "first"
    assert read.calls == 1


def test_a_read_slower_than_the_hedge_is_asked_again_and_the_faster_answer_wins():
    read = Flaky()
    started = time.monotonic()
    assert hedged(read, after=0.05)() == "copy 2"
    assert time.monotonic() - started < 5  # not the 10 s the first copy would have waited
    assert read.calls == 2
    read.release.set()


def test_when_the_second_copy_fails_the_first_copy_still_answers():
    read = Flaky(later_fail=True)
    threading.Timer(0.2, read.release.set).start()
    assert hedged(read, after=0.05)() == "first"


def test_when_both_copies_fail_the_first_copys_error_is_raised():
    read = Flaky(first_fails=True, later_fail=True)
    threading.Timer(0.2, read.release.set).start()
    with pytest.raises(LookupError, match="first copy failed"):
        hedged(read, after=0.05)()


def test_an_error_before_the_hedge_is_raised_without_asking_again():
    read = Flaky(first_fails=True)
    read.release.set()
    with pytest.raises(LookupError):
        hedged(read, after=1.0)()
    assert read.calls == 1


def test_zero_turns_hedging_off():
    read = Flaky()
    assert hedged(read, after=0) is read
