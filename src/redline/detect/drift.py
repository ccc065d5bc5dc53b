"""Behaviour drift: an agent's mix of event types moving away from what it usually does.

Each agent's *profile* is an exponentially weighted average of its per-interval type distribution.
When a baseline interval closes, the interval's distribution is compared with the profile by total
variation distance (half the L1 distance: 0 = identical, 1 = disjoint); at or above ``threshold``
it is drift. The interval is scored before it is learned, and nothing fires until the profile has
``min_intervals`` intervals of at least ``min_events`` events behind it.
"""

from __future__ import annotations

from collections.abc import Callable

from redline.config import DriftConfig
from redline.detect.anomaly import Anomaly
from redline.metrics.windows import Totals

__all__ = ["DriftDetector", "total_variation"]

_INTERNAL = frozenset({"anomaly", "alert", "kill", "revive"})


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    """Half the L1 distance between two distributions over event types."""
    keys = p.keys() | q.keys()
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


class DriftDetector:
    """Per-agent type profiles, scored at each closed interval."""

    def __init__(self, config: DriftConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self._now = clock
        self._profiles: dict[str, tuple[dict[str, float], int]] = {}
        self._fired: dict[str, float] = {}

    def profile(self, agent: str) -> dict[str, float]:
        """The learned distribution for ``agent`` (empty if none yet)."""
        entry = self._profiles.get(agent)
        return dict(entry[0]) if entry else {}

    def observe_interval(self, agent: str, totals: Totals) -> Anomaly | None:
        """Score one closed interval, then learn it."""
        cfg = self.config
        counts = {
            k: v for k, v in totals.types.items() if k not in _INTERNAL and not k.startswith("#")
        }
        n = sum(counts.values())
        if n < cfg.min_events:
            return None
        dist = {k: v / n for k, v in counts.items()}
        entry = self._profiles.get(agent)
        if entry is None:
            self._profiles[agent] = (dist, 1)
            return None
        profile, seen = entry
        anomaly = None
        if seen >= cfg.min_intervals:
            distance = total_variation(dist, profile)
            if distance >= cfg.threshold:
                anomaly = self._fire(agent, distance, dist, profile)
        a = cfg.alpha
        keys = profile.keys() | dist.keys()
        learned = {k: (1 - a) * profile.get(k, 0.0) + a * dist.get(k, 0.0) for k in keys}
        self._profiles[agent] = ({k: v for k, v in learned.items() if v > 1e-6}, seen + 1)
        return anomaly

    def _fire(
        self, agent: str, distance: float, dist: dict[str, float], profile: dict[str, float]
    ) -> Anomaly | None:
        cfg = self.config
        now = self._now()
        last = self._fired.get(agent)
        if last is not None and now - last < cfg.cooldown_seconds:
            return None
        self._fired[agent] = now
        shifted = sorted(
            dist.keys() | profile.keys(),
            key=lambda k: -abs(dist.get(k, 0.0) - profile.get(k, 0.0)),
        )[:3]
        return Anomaly(
            kind="drift",
            rule="behaviour_drift",
            agent=agent,
            severity=cfg.severity,
            action=cfg.action,
            timestamp=now,
            metric="event_type_distribution",
            value=round(distance, 4),
            threshold=cfg.threshold,
            recommended_action="pause_and_review",
            message=(
                f"Behaviour drift: event mix moved {distance:.0%} from the learned profile "
                f"(most changed: {', '.join(shifted)})"
            ),
            details={"observed": dist, "profile": profile},
        )
