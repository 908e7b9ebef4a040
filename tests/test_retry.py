"""The retry helper and wait_for, driven by a fake clock (no real sleeping)."""

from __future__ import annotations

import random

import pytest

from cluster.errors import ClusterTimeout
from cluster.retry import Backoff, retry, wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class RateLimited(Exception):
    pass


def flaky(failures: int, exc: type[Exception] = RateLimited):
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise exc(f"attempt {len(calls)}")
        return "done"

    return call, calls


def test_retries_until_success_with_growing_capped_waits():
    clock = FakeClock()
    call, calls = flaky(5)
    backoff = Backoff(initial=1, maximum=5, multiplier=2, jitter=0, deadline=100)
    assert retry(call, retryable=(RateLimited,), backoff=backoff, clock=clock) == "done"
    assert len(calls) == 6
    assert clock.sleeps == [1, 2, 4, 5, 5]


def test_jitter_shortens_waits_within_bounds_and_varies():
    clock = FakeClock()
    call, _ = flaky(6)
    backoff = Backoff(initial=8, maximum=8, jitter=0.5, deadline=1000)
    retry(call, retryable=(RateLimited,), backoff=backoff, clock=clock, rng=random.Random(7))
    assert all(4 <= s <= 8 for s in clock.sleeps)
    assert len(set(clock.sleeps)) > 1


def test_other_exceptions_are_not_retried():
    clock = FakeClock()
    call, calls = flaky(3, exc=KeyError)
    with pytest.raises(KeyError):
        retry(call, retryable=(RateLimited,), clock=clock)
    assert len(calls) == 1 and clock.sleeps == []


def test_predicate_decides_what_is_retryable():
    clock = FakeClock()
    call, calls = flaky(2)
    retry(call, retryable=lambda e: "attempt" in str(e), clock=clock, backoff=Backoff(jitter=0))
    assert len(calls) == 3


def test_deadline_reraises_the_last_error_with_a_note():
    clock = FakeClock()
    call, calls = flaky(1000)
    backoff = Backoff(initial=1, maximum=4, jitter=0, deadline=10)
    seen = []
    with pytest.raises(RateLimited) as caught:
        retry(
            call,
            retryable=(RateLimited,),
            backoff=backoff,
            clock=clock,
            on_retry=lambda n, e, w: seen.append((n, w)),
        )
    # Waits 1, 2, 4 then only the 3 s left before the deadline; no attempt starts after it.
    assert clock.sleeps == [1, 2, 4, 3]
    assert clock.now - 1000.0 == 10
    assert str(caught.value) == f"attempt {len(calls)}"
    assert caught.value.__notes__ == ["gave up after 5 attempts over 10.0s"]
    assert seen == [(1, 1), (2, 2), (3, 4), (4, 3)]


def test_max_attempts_bounds_the_calls():
    clock = FakeClock()
    call, calls = flaky(1000)
    with pytest.raises(RateLimited):
        retry(call, retryable=(RateLimited,), backoff=Backoff(max_attempts=3), clock=clock)
    assert len(calls) == 3 and len(clock.sleeps) == 2


def test_wait_for_polls_at_the_interval_until_a_value():
    clock = FakeClock()
    answers = iter([None, None, None, {"ready": True}])
    result = wait_for(lambda: next(answers), what="apiserver", timeout=60, interval=2, clock=clock)
    assert result == {"ready": True}
    assert clock.sleeps == [2, 2, 2]


def test_wait_for_times_out_with_cluster_timeout():
    clock = FakeClock()
    with pytest.raises(ClusterTimeout) as caught:
        wait_for(lambda: None, what="the apiserver answering", timeout=5, interval=2, clock=clock)
    assert str(caught.value) == "the apiserver answering did not happen within 5s"
    assert clock.sleeps == [2, 2, 1]
