"""A per-client token bucket, answering 429 ``rateLimitExceeded`` like GCE's API front end.

Clients are told apart by their source address: every caller on this host is 127.0.0.1, so a
test that wants two clients uses two loopback addresses (127.0.0.2 ...).
"""

from __future__ import annotations

import threading
import time
from typing import Any

DEFAULT_RATE = 200.0
DEFAULT_BURST = 400


class RateLimiter:
    """``rate`` requests per second per client with bursts up to ``burst``; rate 0 = no limit."""

    def __init__(self, rate: float = DEFAULT_RATE, burst: int = DEFAULT_BURST) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self.configure(rate, burst)

    def configure(self, rate: Any, burst: Any) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
            raise ValueError(f"rate must be a number of requests per second >= 0, got {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an integer >= 1, got {burst!r}")
        with self._lock:
            self.rate, self.burst = float(rate), burst
            self._buckets.clear()

    def settings(self) -> dict[str, Any]:
        return {"rate": self.rate, "burst": self.burst}

    def allow(self, client: str) -> bool:
        """Take one token from ``client``'s bucket; False when it is empty."""
        if self.rate <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[client] = (tokens, now)
                return False
            self._buckets[client] = (tokens - 1, now)
            return True
