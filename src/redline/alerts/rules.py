"""Alert rules: a metric over a window, warning and critical thresholds, and a lifecycle.

A rule is evaluated every ``alerts.evaluation_interval_seconds`` from the monitor's background
thread (never on the recording path) against live window totals, per agent (wildcard scope) or for
the whole fleet. Each (rule, scope) pair is one *fingerprint* with a small state machine:

* **ok → pending** when the condition first holds; **pending → firing** once it has held for
  ``for_seconds`` (and ``cooldown_seconds`` have passed since this fingerprint last notified);
* **firing** re-notifies when the level moves between warning and critical;
* **firing/acknowledged → resolved** when the condition clears, with a resolve notification;
* **acknowledged** is set by a person (``monitor.ack_alert``) and silences re-notification.

A metric is a snapshot field (``tool_failure_rate``), a derived counter from
``metrics.counters`` (``llm_5xx``), or the ratio of two of them (``llm_5xx / llm_call_count``).
"""

from __future__ import annotations

import fnmatch
import operator
import string
from collections.abc import Callable, Iterable
from typing import Any, Final

import msgspec

from redline.alerts.manager import Alert
from redline.metrics.snapshot import METRIC_NAMES, MetricGetter, metric_getter, snapshot_of
from redline.metrics.windows import Totals

__all__ = ["COUNTER_PREFIX", "AlertRule", "RuleState", "Transition", "resolve_metric"]

#: Derived counters live in the buckets' type counts under this prefix.
COUNTER_PREFIX: Final = "#"
_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_EMPTY = Totals()


def _counter(name: str) -> MetricGetter:
    key = COUNTER_PREFIX + name
    return lambda c, u, w: float(c.types.get(key, 0) + u.types.get(key, 0))


def resolve_metric(expr: str, counters: Iterable[str]) -> MetricGetter:
    """A getter for a rule's metric expression; ``KeyError`` naming what is unknown.

    ``A / B`` divides two operands (0 when B is 0); each operand is a snapshot field or a counter.
    """
    known = set(counters)

    def operand(name: str) -> MetricGetter:
        name = name.strip()
        if name in known:
            return _counter(name)
        if name in METRIC_NAMES:
            return metric_getter(name)
        raise KeyError(name)

    if "/" in expr:
        num_text, _, den_text = expr.partition("/")
        num, den = operand(num_text), operand(den_text)

        def ratio(c: Totals, u: Totals, w: int) -> float:
            d = den(c, u, w)
            return num(c, u, w) / d if d else 0.0

        return ratio
    return operand(expr)


class Transition(msgspec.Struct, kw_only=True):
    """What evaluation decided for one fingerprint: the alert to record and notify."""

    alert: Alert
    channels: list[str]


class RuleState:
    """The lifecycle of one fingerprint (rule × scope)."""

    __slots__ = ("alert", "last_notified", "level", "pending_since")

    def __init__(self) -> None:
        self.level: str | None = None
        self.pending_since: float | None = None
        self.alert: Alert | None = None
        self.last_notified: float | None = None


class AlertRule:
    """One compiled alert rule (see the module docstring)."""

    def __init__(
        self,
        config: Any,
        *,
        window: int,
        counters: Iterable[str],
        next_id: Callable[[], str],
    ) -> None:
        self.config = config
        self.name: str = config.name
        self.window = window
        self.fleet = config.scope == "fleet"
        self._getter = resolve_metric(config.metric, counters)
        self._op = _OPS[config.operator]
        self._pattern: str = config.agent
        self._applies: dict[str, bool] = {}
        self._next_id = next_id
        self.states: dict[str, RuleState] = {}

    def applies_to(self, agent: str) -> bool:
        """Whether the rule's agent wildcard matches ``agent`` (cached)."""
        hit = self._applies.get(agent)
        if hit is None:
            hit = fnmatch.fnmatchcase(agent, self._pattern)
            if len(self._applies) < 100_000:
                self._applies[agent] = hit
        return hit

    def level_of(self, closed: Totals, cur: Totals) -> tuple[str | None, float]:
        """``(level, value)``: ``critical``, ``warning`` or ``None`` for the current totals."""
        if closed.count + cur.count < self.config.min_events:
            return None, 0.0
        value = self._getter(closed, cur, self.window)
        cfg = self.config
        if cfg.critical is not None and self._op(value, cfg.critical):
            return "critical", value
        if cfg.warning is not None and self._op(value, cfg.warning):
            return "warning", value
        return None, value

    def step(self, scope: str, closed: Totals, cur: Totals, now: float) -> Transition | None:
        """Advance the state machine of ``scope`` (an agent, or ``*`` for the fleet)."""
        level, value = self.level_of(closed, cur)
        state = self.states.get(scope)
        if state is None:
            if level is None:
                return None
            state = self.states[scope] = RuleState()
        cfg = self.config
        alert = state.alert
        if level is None:
            state.pending_since = None
            state.level = None
            if alert is not None and alert.state != "resolved":
                resolved = msgspec.structs.replace(
                    alert,
                    state="resolved",
                    timestamp=now,
                    message=f"resolved: {cfg.metric}={value:.4g}",
                    details={**alert.details, "value": value, "resolved_at": now},
                )
                state.alert = None
                state.last_notified = now
                return self._transition(resolved)
            if alert is None and state.last_notified is None:
                self.states.pop(scope, None)
            return None
        if alert is not None:
            if level != state.level:
                state.level = level
                changed = self._alert(scope, level, value, closed, cur, now, alert.id, alert.state)
                if alert.state == "acknowledged":
                    kept = {k: v for k, v in alert.details.items() if k.startswith("acknowledged")}
                    changed = msgspec.structs.replace(changed, details={**changed.details, **kept})
                state.alert = changed
                state.last_notified = now
                return self._transition(changed)
            return None
        if state.pending_since is None:
            state.pending_since = now
        if now - state.pending_since < cfg.for_seconds:
            return None
        if state.last_notified is not None and now - state.last_notified < cfg.cooldown_seconds:
            return None
        state.level = level
        fired = self._alert(scope, level, value, closed, cur, now, self._next_id(), "firing")
        state.alert = fired
        state.last_notified = now
        return self._transition(fired)

    def acknowledge(self, alert_id: str, by: str, now: float) -> Alert | None:
        """Mark a firing alert of this rule acknowledged; the updated alert, or None."""
        for state in self.states.values():
            alert = state.alert
            if alert is not None and alert.id == alert_id and alert.state == "firing":
                state.alert = msgspec.structs.replace(
                    alert,
                    state="acknowledged",
                    timestamp=now,
                    details={**alert.details, "acknowledged_by": by, "acknowledged_at": now},
                )
                return state.alert
        return None

    def active(self) -> list[Alert]:
        """Alerts of this rule that are firing or acknowledged."""
        return [s.alert for s in self.states.values() if s.alert is not None]

    def _transition(self, alert: Alert) -> Transition:
        return Transition(alert=alert, channels=list(self.config.channels))

    def _alert(
        self,
        scope: str,
        level: str,
        value: float,
        closed: Totals,
        cur: Totals,
        now: float,
        alert_id: str,
        state: str,
    ) -> Alert:
        cfg = self.config
        snapshot = snapshot_of(scope, self.window, now, closed, cur).to_dict()
        fields = {
            **snapshot,
            "value": value,
            "rule": cfg.name,
            "level": level,
            "threshold": cfg.critical if level == "critical" else cfg.warning,
        }
        message = (
            _render(cfg.message, fields)
            if cfg.message
            else (
                f"{cfg.metric} = {value:.4g} {cfg.operator} {fields['threshold']:g} "
                f"over {self.window}s"
            )
        )
        return Alert(
            id=alert_id,
            kind="rule",
            severity=level,
            title=f"{cfg.name} ({level})",
            message=message,
            agent=scope,
            timestamp=now,
            rule=cfg.name,
            fingerprint=f"rule:{cfg.name}:{scope}",
            state=state,
            details={
                "metric": cfg.metric,
                "value": value,
                "operator": cfg.operator,
                "warning": cfg.warning,
                "critical": cfg.critical,
                "window_seconds": self.window,
                "labels": dict(cfg.labels),
                "description": cfg.description,
            },
        )


class _Lenient(string.Formatter):
    """A formatter that leaves unknown fields visible instead of raising."""

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        if isinstance(key, str) and key not in kwargs:
            return "{" + key + "}"
        return super().get_value(key, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> str:
        try:
            return str(super().format_field(value, format_spec))
        except (ValueError, TypeError):
            return str(value)


def _render(template: str, fields: dict[str, Any]) -> str:
    try:
        return _Lenient().format(template, **fields)
    except (ValueError, IndexError, KeyError):
        return template


def check_template(template: str) -> str | None:
    """An error message when ``template`` cannot be parsed, else None."""
    try:
        list(string.Formatter().parse(template))
    except ValueError as exc:
        return str(exc)
    return None
