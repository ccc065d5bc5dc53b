"""Running baselines: Welford's mean and deviation, and an exponentially weighted variant.

Both are O(1) per sample and keep three numbers. :class:`WelfordBaseline` weighs all history
equally (the peer's choice); :class:`EWMABaseline` forgets at rate ``alpha`` so a baseline follows
slow, legitimate change. Anomaly rules score a value *before* it is added (scoring a value against
a baseline that already contains it shrinks every z-score towards zero, one of the peer's bugs).
"""

from __future__ import annotations

import math

__all__ = ["EWMABaseline", "WelfordBaseline"]


class WelfordBaseline:
    """Running count, mean and sample standard deviation (Welford 1962)."""

    __slots__ = ("_m2", "count", "mean")

    def __init__(self, count: int = 0, mean: float = 0.0, m2: float = 0.0) -> None:
        self.count = count
        self.mean = mean
        self._m2 = m2

    def update(self, value: float) -> None:
        """Add one sample."""
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self._m2 += delta * (value - self.mean)

    def update_many(self, value: float, times: int) -> None:
        """Add ``times`` identical samples at once (Chan et al.'s parallel merge), in O(1)."""
        if times <= 0:
            return
        n = self.count + times
        delta = value - self.mean
        self._m2 += delta * delta * self.count * times / n
        self.mean += delta * times / n
        self.count = n

    @property
    def variance(self) -> float:
        """Sample variance (n - 1 in the denominator); 0.0 below two samples."""
        return self._m2 / (self.count - 1) if self.count > 1 else 0.0

    @property
    def stddev(self) -> float:
        """Sample standard deviation."""
        return math.sqrt(max(self.variance, 0.0))

    def z_score(self, value: float) -> float | None:
        """How many deviations ``value`` is from the mean; ``None`` while undefined.

        A flat baseline (deviation 0) that sees a different value returns ±inf: a metric that was
        always exactly 0 and is now 5 is as anomalous as it gets.
        """
        if self.count < 2:
            return None
        sd = self.stddev
        if sd == 0.0:
            if value == self.mean:
                return 0.0
            return math.inf if value > self.mean else -math.inf
        return (value - self.mean) / sd

    def to_dict(self) -> dict[str, float]:
        """State for persistence."""
        return {"count": self.count, "mean": self.mean, "m2": self._m2}

    @classmethod
    def from_dict(cls, raw: dict[str, float]) -> WelfordBaseline:
        """Rebuild from :meth:`to_dict`."""
        return cls(int(raw["count"]), float(raw["mean"]), float(raw["m2"]))


class EWMABaseline:
    """Exponentially weighted mean and variance (West 1979); forgets at rate ``alpha``."""

    __slots__ = ("alpha", "count", "mean", "var")

    def __init__(self, alpha: float = 0.1) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        self.alpha = alpha
        self.count = 0
        self.mean = 0.0
        self.var = 0.0

    def update(self, value: float) -> None:
        """Add one sample."""
        self.count += 1
        if self.count == 1:
            self.mean = value
            return
        delta = value - self.mean
        incr = self.alpha * delta
        self.mean += incr
        self.var = (1.0 - self.alpha) * (self.var + delta * incr)

    def update_many(self, value: float, times: int) -> None:
        """Add ``times`` identical samples (bounded: after ~50/alpha the past is forgotten)."""
        for _ in range(min(times, int(50 / self.alpha) + 1)):
            self.update(value)
        self.count += max(0, times - (int(50 / self.alpha) + 1))

    @property
    def stddev(self) -> float:
        """Weighted standard deviation."""
        return math.sqrt(max(self.var, 0.0))

    def z_score(self, value: float) -> float | None:
        """As :meth:`WelfordBaseline.z_score`, against the weighted mean and deviation."""
        if self.count < 2:
            return None
        sd = self.stddev
        if sd == 0.0:
            if value == self.mean:
                return 0.0
            return math.inf if value > self.mean else -math.inf
        return (value - self.mean) / sd

    def to_dict(self) -> dict[str, float]:
        """State for persistence."""
        return {"alpha": self.alpha, "count": self.count, "mean": self.mean, "var": self.var}

    @classmethod
    def from_dict(cls, raw: dict[str, float]) -> EWMABaseline:
        """Rebuild from :meth:`to_dict`."""
        b = cls(float(raw["alpha"]))
        b.count = int(raw["count"])
        b.mean = float(raw["mean"])
        b.var = float(raw["var"])
        return b
