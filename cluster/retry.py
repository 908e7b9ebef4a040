"""The one place kube-up retries and waits: exponential backoff with jitter under a deadline.

Callers say what is worth retrying (exception types or a predicate: 429, 5xx, rate limits,
connection refused while a VM boots...) instead of writing their own loops. Time comes from a
:class:`Clock`, so tests drive it with a fake one and never sleep.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from cluster.errors import ClusterTimeout

T = TypeVar("T")


class Clock(Protocol):
    """Monotonic time and sleeping, replaceable in tests."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()

Retryable = Callable[[BaseException], bool] | tuple[type[BaseException], ...]
OnRetry = Callable[[int, BaseException, float], None]


@dataclass(frozen=True)
class Backoff:
    """How long to wait between attempts and when to give up.

    The n-th wait is ``initial * multiplier**(n-1)``, capped at ``maximum``, then shortened by a
    random fraction of up to ``jitter`` so that many clients do not retry in lockstep. No attempt
    starts after ``deadline`` seconds from the first, nor beyond ``max_attempts`` attempts.
    """

    initial: float = 1.0
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    deadline: float = 300.0
    max_attempts: int | None = None

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.maximum, self.initial * self.multiplier ** min(attempt - 1, 64))
        return base * (1.0 - self.jitter * rng.random())


def retry(
    call: Callable[[], T],
    *,
    retryable: Retryable,
    backoff: Backoff = Backoff(),  # noqa: B008 - frozen, so sharing the default is safe
    clock: Clock = SYSTEM_CLOCK,
    rng: random.Random | None = None,
    on_retry: OnRetry | None = None,
) -> T:
    """Call ``call`` until it returns, retrying the exceptions ``retryable`` accepts.

    When attempts or time run out, the last exception is re-raised with a note saying how many
    attempts were made, so its type (and the CLI's exit code) stays meaningful.
    ``on_retry(attempt, exception, wait)`` is told about each retry, e.g. for a -v detail line.
    """
    accepts = retryable if callable(retryable) else _instance_of(retryable)
    rng = rng or random.Random()
    start = clock.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except Exception as exc:
            if not accepts(exc):
                raise
            elapsed = clock.monotonic() - start
            remaining = backoff.deadline - elapsed
            out_of_attempts = backoff.max_attempts is not None and attempt >= backoff.max_attempts
            if remaining <= 0 or out_of_attempts:
                exc.add_note(f"gave up after {attempt} attempts over {elapsed:.1f}s")
                raise
            wait = min(backoff.delay(attempt, rng), remaining)
            if on_retry is not None:
                on_retry(attempt, exc, wait)
            clock.sleep(wait)


def _instance_of(types: tuple[type[BaseException], ...]) -> Callable[[BaseException], bool]:
    return lambda exc: isinstance(exc, types)


def wait_for(
    check: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float,
    clock: Clock = SYSTEM_CLOCK,
    fix: str | None = None,
) -> T:
    """Call ``check`` every ``interval`` seconds until it returns something other than None.

    Raises :class:`ClusterTimeout` ("<what> did not happen within <timeout>s") when time runs
    out. Exceptions from ``check`` propagate: catch the expected ones inside ``check``.
    """
    start = clock.monotonic()
    while True:
        result = check()
        if result is not None:
            return result
        remaining = timeout - (clock.monotonic() - start)
        if remaining <= 0:
            raise ClusterTimeout(f"{what} did not happen within {timeout:g}s", fix=fix)
        clock.sleep(min(interval, remaining))
