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
        self,
        default_per_minute: int,
        *,
        clock: Callable[[], float] | None = None,
        max_keys: int = 10_000,
    ) -> None:
        if default_per_minute < 1:
            raise ValueError("rate limit must be at least 1 request per minute")
        self.default_per_minute = default_per_minute
        self._now = clock or time.monotonic
        self._lock = threading.Lock()
        # name -> [tokens, last refill time]
        self._buckets: dict[str, list[float]] = {}
        self.limited = 0
        #: Buckets kept at most; beyond it, full (idle a minute) buckets go first, then the
        #: longest idle. A full bucket is the same as a new one, so evicting it forgets nothing.
        self.max_keys = max_keys
        self.evicted = 0

    def acquire(self, key: str, per_minute: int | None = None) -> float:
        """Take one request from ``key``'s bucket: 0.0 when allowed, else seconds to wait."""
        rate = float(per_minute or self.default_per_minute)
        now = self._now()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._evict(now)
                bucket = self._buckets[key] = [rate, now]
            tokens = min(rate, bucket[0] + (now - bucket[1]) * rate / 60.0)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return 0.0
            bucket[0] = tokens
            self.limited += 1
            return (1.0 - tokens) * 60.0 / rate

    def _evict(self, now: float) -> None:
        """Make room: drop buckets idle for a minute (full again), else the idlest tenth."""
        before = len(self._buckets)
        idle = [k for k, (_, last) in self._buckets.items() if now - last >= 60.0]
        for k in idle:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:
            by_age = sorted(self._buckets.items(), key=lambda item: item[1][1])
            for k, _ in by_age[: max(1, len(by_age) // 10)]:
                del self._buckets[k]
        self.evicted += before - len(self._buckets)

    def __len__(self) -> int:
        return len(self._buckets)

    @staticmethod
    def retry_after(wait: float) -> str:
        """``Retry-After`` header value: whole seconds, at least 1."""
        return str(max(1, math.ceil(wait)))
