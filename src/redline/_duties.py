"""Interval work, on one thread (the writer's tick) or :meth:`run_duties` in tests: pending
anomalies acted on, kills persisted and polled, TTLs expired, alert rules and fleet policies
evaluated, acknowledgements adopted, budgets refreshed; and the alert lifecycle it drives.
"""

from __future__ import annotations

import msgspec

from redline._core import _EMPTY, _OPERATORS
from redline._reads import Reads
from redline.alerts.history import latest_alerts
from redline.alerts.manager import Alert
from redline.detect.anomaly import Anomaly
from redline.metrics.windows import Totals
from redline.store.base import EventQuery


class Duties(Reads):
    """Interval work on the duties thread (``run_duties()``), and the alert lifecycle it drives."""

    def run_duties(self) -> None:
        """Run the interval work now, on this thread: act on what detectors handed over, persist
        kills made inline, evaluate alert rules and fleet policies, poll kills made elsewhere and
        expire TTLs. The writer's thread does this every ``kill_switch.poll_interval_seconds``;
        tests and simulations on a manual clock call it instead of waiting."""
        self._tick()

    def _tick(self) -> None:
        """Runs on the writer thread: adopt other processes' kills, expire TTLs, evaluate alert
        rules, and adopt acknowledgements made elsewhere (the CLI, the server)."""
        if not getattr(self, "_ready", False):
            return
        self._act_pending()
        now = self._now()
        if now >= self._next_alert_eval:
            self._next_alert_eval = now + self._alert_interval
            if self._alert_rules:
                self.evaluate_alerts()
            if self._alert_rules or self._groups.active():
                self._poll_acks()
            if self._fleet_policies:
                self.evaluate_fleet_policies()
        self._kills.retry_persist()
        since = self._kills.generation
        changed = self.store.poll_kills()
        if changed is None:
            self._kills.forget_before(since)
        else:
            _added, removed = self._kills.replace_all(changed, since=since)
            for rec in removed:
                if rec.scope == "agent":
                    self.reset_metrics(rec.target)
        for rec in self._kills.expire():
            self._revive(rec.scope, rec.target, "ttl", expired=True, record=rec)
        for alert in self._groups.quiet(now):
            self._publish_alert(alert)  # nothing repeated it for quiet_seconds: resolved
        for alert in self._groups.updated():
            self._store_alert(alert)  # repeats since the last tick: the count, stored
        if self._budgets is not None:
            self._budgets.tick()

    def evaluate_alerts(self) -> list[Alert]:
        """Evaluate every alert rule now; returns the alerts that fired, changed or resolved.

        Runs by itself every ``alerts.evaluation_interval_seconds`` on the background thread;
        tests (and a manual clock) may call it directly.
        """
        now = self._now()
        transitions = []
        with self._lock:
            for rule in self._alert_rules:
                if rule.fleet:
                    fleet = Totals()
                    for w in self._agents.values():
                        for part in self._window_parts(w, rule.window, now):
                            fleet.add(part)
                    step = rule.step("*", fleet, _EMPTY, now)
                    if step is not None:
                        transitions.append(step)
                    continue
                seen = set()
                for agent, w in self._agents.items():
                    if not rule.applies_to(agent):
                        continue
                    seen.add(agent)
                    closed, cur = w.window(rule.window, now)
                    step = rule.step(agent, closed, cur, now)
                    if step is not None:
                        transitions.append(step)
                for agent in [a for a in rule.states if a not in seen]:
                    step = rule.step(agent, _EMPTY, _EMPTY, now)  # the agent went away
                    if step is not None:
                        transitions.append(step)
            pending, self._pending = self._pending, []
        if pending:
            self._act(pending)
        out = []
        for t in transitions:
            self._publish_alert(t.alert, t.channels or None)
            out.append(t.alert)
        return out

    def evaluate_fleet_policies(self) -> list[Anomaly]:
        """Evaluate the fleet policies now, if this monitor leads them; returns what fired.

        On a store shared by many processes (PostgreSQL), one monitor at a time holds the
        ``fleet-policies`` advisory lock and acts; the metric comes from the store's per-minute
        rollup, so it covers every writer. Edge-triggered, like agent policies.
        """
        try_lead = getattr(self.store, "try_lead", None)
        if try_lead is not None and not try_lead("fleet-policies"):
            return []
        fired = []
        now = self._now()
        for cfg in self._fleet_policies:
            snap = self.get_metrics(fleet=True, window=cfg.window_seconds or self.default_window)
            value = float(getattr(snap, cfg.metric))
            holds = snap.event_count >= cfg.min_events and _OPERATORS[cfg.operator](
                value, cfg.threshold
            )
            if not holds:
                self._fleet_breached.discard(cfg.name)
                continue
            if cfg.name in self._fleet_breached:
                continue
            self._fleet_breached.add(cfg.name)
            fired.append(
                Anomaly(
                    kind="policy",
                    rule=cfg.name,
                    agent="*",
                    severity=cfg.severity,
                    metric=cfg.metric,
                    value=value,
                    threshold=cfg.threshold,
                    action=cfg.action,
                    ttl_seconds=cfg.ttl_seconds,
                    timestamp=now,
                    message=cfg.message
                    or (
                        f"Fleet policy '{cfg.name}' triggered: {cfg.metric}={value:.4f} "
                        f"{cfg.operator} {cfg.threshold:g} across the fleet"
                    ),
                    details={"scope": "fleet", "window_seconds": snap.window_seconds},
                )
            )
        if fired:
            self._act(fired)
        return fired

    def active_alerts(self) -> list[Alert]:
        """Alerts that are firing or acknowledged (rule alerts and open groups), newest first."""
        with self._lock:
            alerts = [a for rule in self._alert_rules for a in rule.active()]
        alerts.extend(self._groups.active())
        return sorted(alerts, key=lambda a: a.timestamp, reverse=True)

    def ack_alert(self, alert_id: str, by: str, *, known: Alert | None = None) -> Alert | None:
        """Acknowledge an alert (seed 001's ``acknowledge``): recorded, and sent to channels.

        Works on this monitor's live rule alerts, and on any alert found in the store (so the
        CLI and the server can acknowledge what a running agent raised; that monitor adopts the
        acknowledgement at its next evaluation). Returns the acknowledged alert, or None when
        there is no such open alert. Acknowledging an acknowledged alert returns it unchanged.
        ``known`` is the alert's stored state when the caller already read it.
        """
        now = self._now()
        with self._lock:
            acked = next(
                (a for rule in self._alert_rules if (a := rule.acknowledge(alert_id, by, now))),
                None,
            )
        if acked is None:
            grouped = next((a for a in self._groups.active() if a.id == alert_id), None)
            if grouped is not None and grouped.state == "acknowledged":
                return grouped
            acked = self._groups.acknowledge(alert_id, by, now)
        if acked is None:
            already = next(
                (a for a in self.active_alerts() if a.id == alert_id and a.state != "firing"),
                None,
            )
            if already is not None:  # idempotent: acknowledging twice changes nothing
                return already
            stored = known if known is not None else self._last_alert_state(alert_id)
            if stored is None or stored.state == "resolved":
                return None
            if stored.state == "acknowledged":
                return stored
            acked = msgspec.structs.replace(
                stored,
                state="acknowledged",
                timestamp=now,
                details={**stored.details, "acknowledged_by": by, "acknowledged_at": now},
            )
        self._publish_alert(acked)
        return acked

    def ack_alerts(
        self,
        by: str,
        *,
        agent: str | None = None,
        kind: str | None = None,
        rule: str | None = None,
        severity: str | None = None,
    ) -> list[Alert]:
        """Acknowledge every firing alert that matches the filter (all of them without one).

        Reads the firing alerts from the store (every process's, as ``redline alerts`` lists
        them) and this monitor's live ones, then acknowledges each as :meth:`ack_alert` does.
        Returns the alerts acknowledged, newest first.
        """

        def wanted(a: Alert) -> bool:
            return (
                (agent is None or a.agent == agent)
                and (kind is None or a.kind == kind)
                and (rule is None or a.rule == rule)
                and (severity is None or a.severity == severity)
            )

        self.flush()
        stored = latest_alerts(
            self.store.query(EventQuery(event_type="alert", agent=agent, order="desc"))
        )
        firing = {a.id: a for a in stored if a.state == "firing" and wanted(a)}
        for live in self.active_alerts():
            if live.state == "firing" and wanted(live):
                firing.setdefault(live.id, live)
        acked = [
            done
            for alert in sorted(firing.values(), key=lambda a: a.timestamp, reverse=True)
            if (done := self.ack_alert(alert.id, by, known=alert)) is not None
        ]
        return acked

    def _last_alert_state(self, alert_id: str) -> Alert | None:
        """The newest stored state of an alert, from its ``alert`` events."""
        self.flush()
        for stored in self.store.query(EventQuery(event_type="alert", order="desc")):
            data = stored.event.data
            if data.get("id") == alert_id:
                try:
                    return msgspec.convert(data, Alert)
                except msgspec.ValidationError:
                    return None
        return None

    def _poll_acks(self) -> None:
        """Adopt acknowledgements recorded by other processes for this monitor's alerts."""
        if self.store.backend == "memory":
            return
        mine = {a.id for a in self.active_alerts() if a.state == "firing"}
        now = self._now()
        since = self._ack_cursor if self._ack_cursor is not None else self.started_at
        self._ack_cursor = now
        if not mine:
            return
        query = EventQuery(event_type="alert", since=since - 1.0, order="asc")
        for stored in self.store.query(query):
            data = stored.event.data
            if data.get("state") == "acknowledged" and data.get("id") in mine:
                by = str(data.get("details", {}).get("acknowledged_by", "unknown"))
                with self._lock:
                    for rule in self._alert_rules:
                        rule.acknowledge(str(data["id"]), by, now)
                self._groups.acknowledge(str(data["id"]), by, now)
