"""Z-score rules over baselines, scored before the baseline learns the value.

The peer scored a value against a baseline that already contained it and sampled once per event,
so a rolling metric could never stand out. Here a rule either scores each *closed interval*'s
metric (the baseline interval, default 60 s: independent samples, one per interval) or each
*event*'s own value (``per: event``, for latency, cost or tokens). Either way the value is scored
first and added to the baseline after, and nothing fires before ``min_samples``.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from redline.config import AnomalyRuleConfig, BaselineConfig
from redline.detect.anomaly import Anomaly
from redline.detect.conditions import Condition, compile_condition
from redline.metrics.baselines import EWMABaseline, WelfordBaseline
from redline.metrics.snapshot import MetricGetter, metric_getter
from redline.metrics.windows import Totals

__all__ = ["BaselineBook", "ZScoreRule"]

Baseline = WelfordBaseline | EWMABaseline
_EMPTY = Totals()


class BaselineBook:
    """Baselines per ``(agent, metric)``, created on first use with the configured method."""

    def __init__(self, config: BaselineConfig) -> None:
        self.config = config
        self._book: dict[tuple[str, str], Baseline] = {}

    def get(self, agent: str, metric: str) -> Baseline:
        """The baseline for ``metric`` of ``agent`` (created empty when new)."""
        key = (agent, metric)
        b = self._book.get(key)
        if b is None:
            b = (
                EWMABaseline(self.config.ewma_alpha)
                if self.config.method == "ewma"
                else WelfordBaseline()
            )
            self._book[key] = b
        return b

    def peek(self, agent: str, metric: str) -> Baseline | None:
        """The baseline if it exists."""
        return self._book.get((agent, metric))

    def items(self) -> list[tuple[tuple[str, str], Baseline]]:
        """Every ``((agent, metric), baseline)``."""
        return list(self._book.items())

    def to_dict(self) -> dict[str, Any]:
        """State for persistence: ``{"agent\\x1fmetric": {...}}``."""
        return {f"{a}\x1f{m}": b.to_dict() for (a, m), b in self._book.items()}

    def load(self, raw: dict[str, Any]) -> None:
        """Restore from :meth:`to_dict` output (unknown entries are skipped)."""
        for key, state in raw.items():
            agent, _, metric = key.partition("\x1f")
            if "alpha" in state:
                self._book[(agent, metric)] = EWMABaseline.from_dict(state)
            else:
                self._book[(agent, metric)] = WelfordBaseline.from_dict(state)


class ZScoreRule:
    """One compiled anomaly rule."""

    def __init__(
        self,
        config: AnomalyRuleConfig,
        *,
        min_samples: int,
        variables: dict[str, Any],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.name = config.name
        self.metric = config.metric
        self.per_event = config.per == "event"
        self.threshold = config.z_threshold
        self.min_samples = config.min_samples or min_samples
        self._getter: MetricGetter | None = None if self.per_event else metric_getter(self.metric)
        self._condition: Condition = compile_condition(config.condition)
        self._needs_condition = bool(config.condition.strip())
        self._variables = variables
        self._pattern = config.agent
        self._applies: dict[str, bool] = {}
        self._last_fired: dict[str, float] = {}
        self._now = clock

    @property
    def baseline_key(self) -> str:
        """The metric name its baseline is kept under (per-event values are prefixed)."""
        return f"event:{self.metric}" if self.per_event else self.metric

    def applies_to(self, agent: str) -> bool:
        """Whether the rule's agent wildcard (``sales-*``) matches ``agent``; cached."""
        hit = self._applies.get(agent)
        if hit is None:
            hit = fnmatch.fnmatchcase(agent, self._pattern)
            if len(self._applies) < 100_000:
                self._applies[agent] = hit
        return hit

    def interval_value(self, totals: Totals, seconds: int) -> float:
        """The rule's metric over one closed interval."""
        assert self._getter is not None
        return self._getter(totals, _EMPTY, seconds)

    def score(
        self,
        agent: str,
        value: float,
        baseline: Baseline,
        at: float,
        session_id: str | None = None,
    ) -> Anomaly | None:
        """Score ``value`` against ``baseline`` (not yet updated); an anomaly or ``None``."""
        if baseline.count < self.min_samples:
            return None
        z = baseline.z_score(value)
        if z is None:
            return None
        direction = self.config.direction
        hit = (
            abs(z) >= self.threshold
            if direction == "both"
            else (z >= self.threshold if direction == "up" else z <= -self.threshold)
        )
        if not hit:
            return None
        now = self._now()
        last = self._last_fired.get(agent)
        if last is not None and now - last < self.config.cooldown_seconds:
            return None
        if self._needs_condition and not self._condition(
            self._context(agent, value, at), self._variables
        ):
            return None
        self._last_fired[agent] = now
        z_shown = z if math.isfinite(z) else (1e9 if z > 0 else -1e9)
        return Anomaly(
            kind="zscore",
            rule=self.name,
            agent=agent,
            session_id=session_id,
            severity=self.config.severity,
            metric=self.metric,
            value=value,
            z_score=round(z_shown, 3),
            threshold=self.threshold,
            action=self.config.action,
            timestamp=now,
            recommended_action="pause_and_review",
            message=(
                f"Anomaly detected: {self.metric}={value:.4f} "
                f"(z={'inf' if not math.isfinite(z) else f'{z:.2f}'}, "
                f"baseline {baseline.mean:.4f} ± {baseline.stddev:.4f}, "
                f"threshold={self.threshold})"
            ),
            details={
                "baseline_mean": baseline.mean,
                "baseline_stddev": baseline.stddev,
                "samples": baseline.count,
            },
        )

    def _context(self, agent: str, value: float, at: float) -> dict[str, Any]:
        t = datetime.fromtimestamp(at, tz=timezone.utc)
        return {
            "hour": t.hour,
            "minute": t.minute,
            "day_of_week": t.weekday(),
            "agent": agent,
            "metric": self.metric,
            "value": value,
        }
