"""Per-token rate limits: a token bucket per caller.

Each caller's bucket holds up to ``rate_per_minute`` requests and refills at ``rate/60`` per
second, so a steady client gets its rate and an idle one may burst up to a minute's worth. A
request that finds the bucket empty is refused with the seconds until one request is available
(the ``Retry-After`` the server sends with its 429).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """Token buckets keyed by caller name. Thread-safe; O(1) per request."""

    def __init__(
        self, default_per_minute: int, *, clock: Callable[[], float] | None = None
    ) -> None:
        if default_per_minute < 1:
            raise ValueError("rate limit must be at least 1 request per minute")
        self.default_per_minute = default_per_minute
        self._now = clock or time.monotonic
        self._lock = threading.Lock()
        # name -> [tokens, last refill time]
        self._buckets: dict[str, list[float]] = {}
        self.limited = 0

    def acquire(self, key: str, per_minute: int | None = None) -> float:
        """Take one request from ``key``'s bucket: 0.0 when allowed, else seconds to wait."""
        rate = float(per_minute or self.default_per_minute)
        now = self._now()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = [rate, now]
            tokens = min(rate, bucket[0] + (now - bucket[1]) * rate / 60.0)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return 0.0
            bucket[0] = tokens
            self.limited += 1
            return (1.0 - tokens) * 60.0 / rate

    @staticmethod
    def retry_after(wait: float) -> str:
        """``Retry-After`` header value: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait)))
