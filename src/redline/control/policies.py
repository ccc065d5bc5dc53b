"""Automatic policies: ``metric operator threshold`` → kill or alert, evaluated on every event.

A policy is compiled once into a metric getter, an operator function and an agent matcher, so
evaluating it is a few float operations on the window's running totals: O(number of policies) per
event, independent of how many events the window holds.

Policies are *edge-triggered*: one fires when its condition becomes true for an agent and re-arms
when the condition clears, so a sustained breach produces one kill or one alert, not one per
event. Reviving an agent re-arms its policies (and the monitor starts its windows afresh, so the
spike that tripped the switch does not trip it again on the next event).
"""

from __future__ import annotations

import fnmatch
import operator
from collections.abc import Callable
from typing import Any, Final

from redline.config import KillPolicyConfig
from redline.detect.anomaly import Anomaly
from redline.metrics.snapshot import MetricGetter, metric_getter
from redline.metrics.windows import Totals

__all__ = ["KillPolicy"]

_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


class KillPolicy:
    """One compiled policy."""

    def __init__(self, config: KillPolicyConfig, window_seconds: int) -> None:
        self.config = config
        self.name = config.name
        self.metric = config.metric
        self.window = window_seconds
        self.threshold = config.threshold
        self.action = config.action
        self._op = _OPS[config.operator]
        self._getter: MetricGetter = metric_getter(config.metric)
        self._pattern = config.agent
        self.match_all = config.agent == "*"
        self._applies: dict[str, bool] = {}
        self._per_session = config.action == "kill_session"
        self._breached: set[Any] = set()

    def applies_to(self, agent: str) -> bool:
        """Whether the policy's agent wildcard matches ``agent`` (cached)."""
        if self.match_all:
            return True
        hit = self._applies.get(agent)
        if hit is None:
            hit = fnmatch.fnmatchcase(agent, self._pattern)
            if len(self._applies) < 100_000:
                self._applies[agent] = hit
        return hit

    def evaluate(
        self, agent: str, closed: Totals, cur: Totals, now: float, session_id: str | None = None
    ) -> Anomaly | None:
        """An anomaly when the condition has just become true for ``agent``.

        A ``kill_session`` policy tracks its breach per session: while the agent's metric stays
        over the threshold, each session that keeps recording is stopped in turn.
        """
        key: Any = (agent, session_id) if self._per_session and session_id is not None else agent
        if closed.count + cur.count < self.config.min_events:
            self._breached.discard(key)
            return None
        value = self._getter(closed, cur, self.window)
        if not self._op(value, self.threshold):
            self._breached.discard(key)
            if key != agent:  # the agent cleared: every session of it is re-armed
                self._breached = {
                    k for k in self._breached if not (isinstance(k, tuple) and k[0] == agent)
                }
            return None
        if key in self._breached:
            return None
        self._breached.add(key)
        cfg = self.config
        message = cfg.message or (
            f"Kill policy '{cfg.name}' triggered for agent '{agent}': "
            f"{cfg.metric}={value:.4f} {cfg.operator} {cfg.threshold:g}"
        )
        return Anomaly(
            kind="policy",
            rule=cfg.name,
            agent=agent,
            severity=cfg.severity,
            metric=cfg.metric,
            value=value,
            threshold=cfg.threshold,
            action=cfg.action,
            ttl_seconds=cfg.ttl_seconds,
            timestamp=now,
            message=message,
            details={"operator": cfg.operator, "window_seconds": self.window},
        )

    def rearm(self, agent: str | None = None, *, session: str | None = None) -> None:
        """Forget that ``agent``, ``session`` (or everyone) is in breach."""
        if agent is None and session is None:
            self._breached.clear()
            return
        self._breached = {
            k
            for k in self._breached
            if not (
                (agent is not None and (k == agent or (isinstance(k, tuple) and k[0] == agent)))
                or (session is not None and isinstance(k, tuple) and k[1] == session)
            )
        }
