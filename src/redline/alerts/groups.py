"""Alert groups: one open alert per cause, the way Alertmanager and PagerDuty group them.

A detector that fires on every ``send_email`` call, a policy that re-kills, a budget that keeps
denying: each would otherwise open one firing alert per event. Here every alert the monitor
raises itself (anomalies, kills, budgets; metric rules have their own lifecycle in
:mod:`redline.alerts.rules`) joins the open group of its *group key*: kind, rule, agent, and
the detector's own key (the action name, the budget key, the kill's target). A group carries
``count``, ``first_seen`` and ``last_seen``:

* the first alert of a group is recorded and sent to the channels;
* a repeat updates the group; the channels hear of it again only after ``repeat_seconds``
  (Alertmanager's ``repeat_interval``), and the stored state is refreshed at most once per
  duties tick, so ``redline alerts`` and ``/v1/alerts`` show the count;
* a group resolves when nothing repeated it for ``quiet_seconds`` (a revive resolves its kill's
  group at once), with a resolve notification;
* an informational notice (a revive, severity ``info``) is never ``firing``: it is stored and
  sent as ``resolved``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import msgspec

from redline.alerts.manager import Alert

__all__ = ["AlertGroups", "group_key"]

_replace = msgspec.structs.replace


def group_key(alert: Alert) -> str:
    """The cause an alert stands for: kind, rule, agent and the detector's key."""
    d = alert.details
    nested = d.get("details")
    inner: dict[str, Any] = nested if isinstance(nested, dict) else {}
    key = (
        d.get("target")
        if alert.kind == "kill"
        else inner.get("action")
        or inner.get("tool")
        or d.get("metric")
        or (f"{d['budget']}:{d.get('key', '')}:{alert.title}" if "budget" in d else None)
        or ""
    )
    return f"{alert.kind}:{alert.rule or ''}:{alert.agent}:{key}"


@dataclass(slots=True)
class _Group:
    alert: Alert
    notified_at: float
    dirty: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class AlertGroups:
    """The open groups of one monitor (thread-safe)."""

    def __init__(self, *, repeat_seconds: float = 3600.0, quiet_seconds: float = 300.0) -> None:
        self.repeat_seconds = repeat_seconds
        self.quiet_seconds = quiet_seconds
        self._open: dict[str, _Group] = {}
        self._closed: list[Alert] = []  # resolved by join(), published by quiet()
        self._lock = threading.Lock()
        self.suppressed = 0  # repeats folded into an open group instead of notified

    def join(self, alert: Alert, now: float) -> tuple[Alert, bool]:
        """``alert`` as its group's current state, and whether to record and notify it now."""
        fingerprint = group_key(alert)
        if alert.severity == "info":  # a notice: recorded and sent, never firing
            return _replace(alert, fingerprint=fingerprint, state="resolved"), True
        with self._lock:
            group = self._open.get(fingerprint)
            if (
                group is not None
                and alert.kind != "kill"  # a kill's group is open until the kill is lifted
                and now - (group.alert.last_seen or now) >= self.quiet_seconds
            ):
                # Quiet long enough to have resolved (the duties had not run yet): this is a
                # new occurrence; the old group's resolution is published by the next tick.
                self._closed.append(self._resolve(fingerprint, now, "quiet"))
                group = None
            if group is None:
                fresh = _replace(
                    alert, fingerprint=fingerprint, count=1, first_seen=now, last_seen=now
                )
                self._open[fingerprint] = _Group(fresh, notified_at=now)
                return fresh, True
            current = group.alert
            merged = _replace(
                current,
                count=current.count + 1,
                last_seen=now,
                timestamp=now,
                message=alert.message,
                severity=_worse(current.severity, alert.severity),
                session_id=alert.session_id or current.session_id,
                details=alert.details,
            )
            group.alert = merged
            if current.state == "firing" and now - group.notified_at >= self.repeat_seconds:
                group.notified_at = now
                group.dirty = False
                return merged, True
            group.dirty = True
            self.suppressed += 1
            return merged, False

    def updated(self) -> list[Alert]:
        """Groups whose count moved since they were last stored (to store, not to notify)."""
        with self._lock:
            out = []
            for group in self._open.values():
                if group.dirty:
                    group.dirty = False
                    out.append(group.alert)
            return out

    def quiet(self, now: float) -> list[Alert]:
        """Groups nothing repeated for ``quiet_seconds``, closed and returned as resolved."""
        with self._lock:
            done = [
                fp
                for fp, g in self._open.items()
                if g.alert.kind != "kill" and now - (g.alert.last_seen or 0.0) >= self.quiet_seconds
            ]
            closed, self._closed = self._closed, []
            return closed + [self._resolve(fp, now, "quiet") for fp in done]

    def resolve_kill(self, target: str, now: float) -> list[Alert]:
        """Close the kill groups of ``target`` (a revive or an expiry lifted the kill)."""
        with self._lock:
            done = [
                fp
                for fp, g in self._open.items()
                if g.alert.kind == "kill" and g.alert.details.get("target") == target
            ]
            return [self._resolve(fp, now, "revived") for fp in done]

    def _resolve(self, fingerprint: str, now: float, why: str) -> Alert:
        group = self._open.pop(fingerprint)
        return _replace(
            group.alert,
            state="resolved",
            timestamp=now,
            details={**group.alert.details, "resolved_by": why, "resolved_at": now},
        )

    def acknowledge(self, alert_id: str, by: str, now: float) -> Alert | None:
        """Acknowledge the open group with ``alert_id`` (silences its repeats)."""
        with self._lock:
            for group in self._open.values():
                if group.alert.id == alert_id:
                    if group.alert.state != "acknowledged":
                        group.alert = _replace(
                            group.alert,
                            state="acknowledged",
                            timestamp=now,
                            details={
                                **group.alert.details,
                                "acknowledged_by": by,
                                "acknowledged_at": now,
                            },
                        )
                    return group.alert
        return None

    def active(self) -> list[Alert]:
        """Open groups (firing or acknowledged)."""
        with self._lock:
            return [g.alert for g in self._open.values()]

    def after_fork(self) -> None:
        self._lock = threading.Lock()


_RANK = {"info": 0, "warning": 1, "critical": 2}


def _worse(a: str, b: str) -> str:
    return a if _RANK.get(a, 1) >= _RANK.get(b, 1) else b
