"""The per-event path of :meth:`Monitor.record`: validation, pricing, scrubbing, windows,
detectors and policies, the queue. What it decides to do (a kill) is done in memory on the
recording thread; nothing here waits on the store (unless ``durability: sync``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

from redline._core import _EMPTY, _INTERNAL_TYPES, _OVERFLOW_AGENT, _replace, log
from redline.control._switches import KillSwitches
from redline.control.budgets.manager import Budgets, Who
from redline.detect.anomaly import Anomaly
from redline.detect.conditions import Condition
from redline.detect.patterns import action_name
from redline.events import GOVERNANCE_TYPES, AgentEvent
from redline.exceptions import InvalidEventError
from redline.metrics.windows import AgentWindows, Totals
from redline.pricing import PriceTable


class Pipeline(KillSwitches):
    """The per-event path: validate, price, scrub, count, detect, queue; act inline in memory."""

    def record(self, event: AgentEvent) -> None:
        """Record one event. Never raises into the agent (unless ``strict``); never blocks.

        The event is validated (repaired or rejected per the documented policy), scrubbed of
        secrets, counted in the windows, run past the detectors and policies, published on the
        bus and queued for the store. An event from a killed agent/session is stored with
        ``killed_scope`` set and does not feed the metrics.
        """
        try:
            ev = self._check_event(event)
            if ev is None:
                return
            if ev.cost_usd is None and ev.model is not None and (ev.tokens_in or ev.tokens_out):
                ev = self._priced(ev)
            if self._tracking and not self._is_tracked(ev):
                self._filtered += 1
                return
            if self._redact is not None:
                if ev.data:
                    data = self._redact(ev.data)
                    if data is not ev.data:
                        ev = _replace(ev, data=data)
                if ev.tool is not None or ev.status is not None or ev.tags:
                    ev = self._scrub_fields(ev)
            pending = None
            with self._lock:
                self._recorded += 1
                killed = (
                    self._kills.covering(ev.agent, ev.session_id) if self._kills.active else None
                )
                if killed is not None:
                    self._blocked += 1
                    ev = _replace(ev, killed_scope=killed.scope)
                elif ev.event_type not in _INTERNAL_TYPES:
                    self._observe(ev)
                if self._pending:
                    pending, self._pending = self._pending, []
                # Under the lock, so the writer's counters (and flush() targets) are exact.
                self._put(ev)
            if self.bus.active:
                self.bus.publish(ev)
            if ev.cost_usd and self._budgets is not None:
                self._spent(ev)
            if pending:
                # On the agent's thread: a kill is enforced in memory now and persisted by the
                # duties thread; nothing here waits on the store (unless durability: sync).
                self._act(pending, inline=True)
            if ev.event_type in self._sync_types:
                self._sync_commit()
        except InvalidEventError:
            raise
        except Exception:
            self._internal_errors += 1
            if self._internal_errors == 1 or self._internal_errors % 10_000 == 0:
                log.exception("redline: record() failed internally; the agent was not affected")

    def _priced(self, ev: AgentEvent) -> AgentEvent:
        """``ev`` with the cost of its tokens, marked estimated (unchanged for an unknown model)."""
        provider = ev.data.get("provider") if ev.data else None
        cost = self._prices.cost(
            cast(str, ev.model),
            ev.tokens_in,
            ev.tokens_out,
            ev.tokens_cached,
            ev.tokens_cache_write,
            provider=provider if isinstance(provider, str) else None,
        )
        if cost is None:
            return ev
        return _replace(ev, cost_usd=cost, cost_estimated=True)

    def _spent(self, ev: AgentEvent) -> None:
        """A recorded cost counts against the budgets covering who spent it."""
        rid = ev.data.get("reservation_id") if ev.data else None
        who = Who(ev.agent, ev.session_id, ev.user, ev.tenant, ev.model)
        cast(Budgets, self._budgets).note(who, cast(float, ev.cost_usd), rid)

    @property
    def prices(self) -> PriceTable:
        """The cost engine: what an event's tokens cost, and a call's estimate before it runs."""
        return self._prices

    def _sync_commit(self) -> None:
        """Governance evidence was queued: commit it now without waiting (``group``), wait for
        it (``sync``), or wait once at the end of the enclosing ``batch()``."""
        deferred = getattr(self._batch_state, "depth", 0)
        if deferred:
            self._batch_state.pending = True
        elif self._durability_sync:
            self._writer.flush(5.0)
        else:
            self._writer.wake()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Record many events with one commit for the synchronous types among them.

        Inside the block, an event of a ``storage.sync_types`` type does not wait for its own
        commit; leaving the block waits once for everything recorded in it. The durability
        contract then holds per batch: the HTTP server uses it so a request returns only after
        its denials are committed, without one commit per denial. Nests; per thread.
        """
        state = self._batch_state
        state.depth = getattr(state, "depth", 0) + 1
        try:
            yield
        finally:
            state.depth -= 1
            if state.depth == 0 and getattr(state, "pending", False):
                state.pending = False
                self._writer.flush(5.0)

    def record_checked(
        self, event: AgentEvent | dict[str, Any], *, untrusted: bool = False
    ) -> tuple[str, list[str]]:
        """Record one event and say what validation did: ``(status, reasons)``.

        ``status`` is ``"accepted"``, ``"repaired"`` (recorded with fixes, ``reasons`` says
        which) or ``"rejected"`` (not recorded). For callers that report per event, such as the
        HTTP server's batch ingest; agents call :meth:`record`. Unlike ``record()`` it never
        raises for a bad event, even with ``strict=True``: strict problems come back as
        ``"rejected"`` with their reasons. The event is validated once, by ``record()`` itself;
        the reasons are collected on this thread while it runs.

        ``untrusted`` marks an event from outside the process (the HTTP ingest path): it may not
        carry a governance type (``kill``, ``revive``, ``alert``, ``anomaly``). Those records
        come only from the monitor's own authenticated actions, so a forged kill, revive or
        acknowledgement is refused and counted (``governance_type``) instead of stored as one.
        """
        validator = self._validator
        if untrusted:
            etype = (
                event.get("event_type")
                if isinstance(event, dict)
                else getattr(event, "event_type", None)
            )
            if isinstance(etype, str) and etype.strip().lower() in GOVERNANCE_TYPES:
                message = (
                    f"event_type {etype!r} is written only by the monitor from an authenticated "
                    "action (kill, revive, ack); it cannot be ingested"
                )
                validator.reject("governance_type", message)
                return "rejected", [message]
        notes = validator.start_notes()  # filled by the validator's slow path, this thread only
        try:
            self.record(event)  # type: ignore[arg-type]
        except InvalidEventError as exc:
            return "rejected", [f"{field}: {issue}" for field, issue in exc.problems]
        finally:
            validator.stop_notes()
        if not notes:
            return "accepted", []
        reasons = [text for _, text in notes]
        if any(outcome == "rejected" for outcome, _ in notes):
            return "rejected", reasons
        return "repaired", reasons

    def _observe(self, ev: AgentEvent) -> None:
        """Windows, per-event detectors and policies. Called with the lock held."""
        agent = ev.agent
        windows = self._agents.get(agent)
        if windows is None:
            windows = self._new_agent(agent)
        derived: tuple[str, ...] = ()
        if self._counters:
            specs = self._counters.get(ev.event_type)
            if specs:
                derived = self._derived_keys(ev, specs)
        if not windows.observe(ev, derived):
            self._late += 1
            return
        if self._policies:
            cur = windows.cur
            now = self._now()
            closed = windows._closed
            for policy in self._policies:
                if policy.match_all or policy.applies_to(agent):
                    anomaly = policy.evaluate(agent, closed[policy.window], cur, now, ev.session_id)
                    if anomaly is not None:
                        anomaly.session_id = ev.session_id
                        self._pending.append(anomaly)
        if self._event_rules:
            for rule in self._event_rules:
                value = getattr(ev, rule.metric, None)
                if value is None or not rule.applies_to(agent):
                    continue
                baseline = self._baselines.get(agent, rule.baseline_key)
                anomaly = rule.score(agent, float(value), baseline, ev.timestamp, ev.session_id)
                baseline.update(float(value))
                if anomaly is not None:
                    self._pending.append(anomaly)
        if self._action_detectors:
            name = action_name(ev)
            if name is not None:
                for detector in self._action_detectors:
                    anomaly = detector.observe(ev, name)
                    if anomaly is not None:
                        self._pending.append(anomaly)

    @staticmethod
    def _derived_keys(ev: AgentEvent, specs: list[tuple[str, Condition | None]]) -> tuple[str, ...]:
        """The derived counters (``metrics.counters``) ``ev`` counts toward, as type keys."""
        keys: list[str] = []
        context: dict[str, Any] | None = None
        for key, cond in specs:
            if cond is not None:
                if context is None:
                    # The event's own fields, overridden by ``data``'s (``status`` there is
                    # the HTTP status of an error, ``ev.status`` a tool call's outcome).
                    context = {
                        "agent": ev.agent,
                        "event_type": ev.event_type,
                        "tool": ev.tool,
                        "model": ev.model,
                        "status": ev.status,
                        "cost_usd": ev.cost_usd,
                        "latency_ms": ev.latency_ms,
                        **ev.data,
                        "data": ev.data,
                    }
                if not cond(context):
                    continue
            keys.append(key)
        return tuple(keys)

    def _is_tracked(self, ev: AgentEvent) -> bool:
        rule = self._tracking.get(ev.agent)
        if rule is None:
            return True
        enabled, types = rule
        return enabled and (not types or ev.event_type in types)

    def _new_agent(self, agent: str) -> AgentWindows:
        if len(self._agents) >= self._max_agents:
            self._evict_idle()
            if len(self._agents) >= self._max_agents:
                overflow = self._agents.get(_OVERFLOW_AGENT)
                if overflow is not None:
                    return overflow
                agent = _OVERFLOW_AGENT
        windows = AgentWindows(
            agent,
            self.windows,
            start=self._now(),
            interval=self._interval,
            hook=self._on_interval,
            span=self.max_window,
        )
        self._agents[agent] = windows
        return windows

    def _evict_idle(self) -> None:
        horizon = self._now() - self.max_window
        idle = [a for a, w in self._agents.items() if w.last_seen < horizon]
        for agent in idle:
            del self._agents[agent]
        self._evicted_agents += len(idle)

    def _on_interval(self, windows: AgentWindows, totals: Totals, start: int, empties: int) -> None:
        """A baseline interval closed for one agent: score, then learn. Lock held."""
        agent = windows.agent
        seconds = windows.interval
        at = float(start + seconds)
        for name, getter in self._tracked_metrics:
            value = getter(totals, _EMPTY, seconds)
            baseline = self._baselines.get(agent, name)
            for rule in self._interval_rules:
                if rule.metric == name and rule.applies_to(agent):
                    anomaly = rule.score(agent, value, baseline, at)
                    if anomaly is not None:
                        self._pending.append(anomaly)
            baseline.update(value)
            self._baselines_dirty = True
            if empties > 0:
                baseline.update_many(getter(_EMPTY, _EMPTY, seconds), empties)
        for detector in self._interval_detectors:
            anomaly = detector.observe_interval(agent, totals)
            if anomaly is not None:
                self._pending.append(anomaly)

    def _act_pending(self) -> None:
        """Act on anomalies a read's window roll produced (reads hand them to the duties)."""
        if not self._pending:
            return
        with self._lock:
            pending, self._pending = self._pending, []
        if pending:
            self._act(pending)

    def _act(self, anomalies: list[Anomaly], *, inline: bool = False) -> None:
        """Carry out what the detectors decided. ``inline``: on the recording thread, where
        (under ``durability: group``) nothing may wait for the store."""
        if inline and not self._durability_sync:
            self._no_wait.active = True
            try:
                self._act_all(anomalies)
            finally:
                self._no_wait.active = False
            self._writer.request_tick()  # persist the kills and commit the evidence now
        else:
            self._act_all(anomalies)

    def _act_all(self, anomalies: list[Anomaly]) -> None:
        for anomaly in anomalies:
            self._anomaly_count += 1
            self._record_internal(
                AgentEvent(
                    timestamp=anomaly.timestamp,
                    agent=anomaly.agent,
                    event_type="anomaly",
                    session_id=anomaly.session_id,
                    level="warning",
                    data=anomaly.to_dict(),
                )
            )
            for hook in list(self._anomaly_hooks):
                try:
                    hook(anomaly)
                except Exception:
                    log.exception("redline: anomaly hook failed")
            action = anomaly.action
            actor = f"{anomaly.kind}:{anomaly.rule}"
            ttl = anomaly.ttl_seconds
            if action == "kill_agent":
                self._kill("agent", anomaly.agent, anomaly.message, actor, ttl, anomaly)
            elif action == "kill_session":
                if anomaly.session_id:
                    self._kill(
                        "session",
                        anomaly.session_id,
                        anomaly.message,
                        actor,
                        ttl,
                        anomaly,
                        agent=anomaly.agent,
                    )
                else:
                    self._kill(
                        "agent",
                        anomaly.agent,
                        anomaly.message + " (no session on the event: agent killed)",
                        actor,
                        ttl,
                        anomaly,
                    )
            elif action == "kill_global":
                self._kill("global", "*", anomaly.message, actor, ttl, anomaly)
            else:
                self._alert(
                    kind=anomaly.kind,
                    severity=anomaly.severity,
                    title=f"{anomaly.kind} anomaly: {anomaly.rule}",
                    message=anomaly.message,
                    agent=anomaly.agent,
                    rule=anomaly.rule,
                    session_id=anomaly.session_id,
                    details=anomaly.to_dict(),
                )
