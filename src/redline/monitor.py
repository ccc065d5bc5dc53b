"""``Monitor``: the one object an agent talks to.

It wires the parts (validation, redaction, windows, detectors, kill switch, bus, writer, alerts)
that are decided once, here, at construction; ``record()`` is then a handful of dict lookups and
O(1) arithmetic under one short lock, followed by one queue append. Anything slow (the store,
alert delivery, persistence of kills) happens off that path or outside that lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import operator
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import msgspec

from redline import _lifecycle, shutdown
from redline.alerts.manager import Alert, AlertManager
from redline.alerts.rules import COUNTER_PREFIX, AlertRule
from redline.bus import EventBus, Handler
from redline.clock import Clock, SystemClock
from redline.config import MonitorConfig, resolve_backend
from redline.control.budgets.facade import BudgetMethods, open_budgets
from redline.control.budgets.manager import Budgets, Who
from redline.control.killswitch import KillSwitch
from redline.control.policies import KillPolicy
from redline.detect.anomaly import Anomaly
from redline.detect.conditions import Condition, compile_condition
from redline.detect.drift import DriftDetector
from redline.detect.patterns import LoopDetector, StuckDetector, SuspiciousDetector, action_name
from redline.detect.zscore import BaselineBook, ZScoreRule
from redline.events import GOVERNANCE_TYPES, AgentEvent
from redline.exceptions import AgentKilledError, InvalidEventError, StoreError
from redline.export.config import start_exporters
from redline.guard import Guard
from redline.metrics.snapshot import MetricSnapshot, snapshot_of
from redline.metrics.windows import AgentWindows, Totals, sum_recent
from redline.pricing import PriceTable
from redline.redaction import Redactor
from redline.store.base import EventQuery, ForkAware, KillRecord, Store, StoredEvent
from redline.store.chain import VerifyReport
from redline.store.memory import MemoryStore
from redline.timeparse import parse_time
from redline.validation import EventValidator
from redline.writer import BackgroundWriter

__all__ = ["Guard", "Monitor"]

log = logging.getLogger("redline")

_INTERNAL_TYPES = GOVERNANCE_TYPES
_OVERFLOW_AGENT = "_overflow"
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_replace = msgspec.structs.replace


class Monitor(BudgetMethods):
    """Governance-first observability for one process: see, judge, act, prove.

    ``Monitor()`` alone keeps events in a bounded in-memory store with default windows; pass a
    :class:`~redline.config.MonitorConfig` (``load_config("monitor.yaml")``) for the rest.
    ``clock`` injects time (tests and simulations use ``redline.testing.ManualClock``); ``store``
    overrides the configured storage; ``strict=True`` raises on bad events instead of repairing.
    """

    def __init__(
        self,
        config: MonitorConfig | None = None,
        *,
        clock: Clock | None = None,
        store: Store | None = None,
        strict: bool | None = None,
    ) -> None:
        self.config = config = config if config is not None else MonitorConfig()
        self.clock = clock if clock is not None else SystemClock()
        now = self._now = self.clock.time
        self._lock = threading.Lock()
        self._closed = False
        self.started_at = now()

        ev = config.events
        self._validator = EventValidator(
            clock=now,
            strict=ev.strict if strict is None else strict,
            max_data_bytes=ev.max_data_bytes,
            max_clock_skew=ev.max_clock_skew_seconds,
            max_age=ev.max_age_seconds,
        )
        self._check_event = self._validator.check
        self._prices = PriceTable(config.section("pricing"), clock=now)
        red = config.redaction
        self._redactor = Redactor(
            enabled=red.enabled,
            extra_keys=red.keys,
            emails=red.emails,
            cards=red.cards,
            credentials=red.credentials,
            patterns=red.patterns,
            allow_keys=red.allow_keys,
        )
        self._redact = self._redactor.scrub if red.enabled else None

        # Per-agent tracking filter (the peer's ``agents`` section).
        self._tracking: dict[str, tuple[bool, frozenset[str]]] = {
            name: (a.enabled, frozenset(a.event_types)) for name, a in config.agents.items()
        }

        # Windows: the default, extra ones, and any a policy asks for.
        m = config.metrics
        self.default_window = m.default_window_seconds
        self.max_window = m.max_window_seconds
        ks = config.kill_switch
        policy_windows = [p.window_seconds for p in ks.policies if p.window_seconds]
        rule_windows = [r.window_seconds for r in config.alerts.rules if r.window_seconds]
        self.windows: tuple[int, ...] = tuple(
            sorted({m.default_window_seconds, *m.windows, *policy_windows, *rule_windows})
        )
        # Derived counters, by the event type they watch: one dict lookup per event.
        self._counters: dict[str, list[tuple[str, Condition | None]]] = {}
        for name, counter in m.counters.items():
            cond = compile_condition(counter.where) if counter.where.strip() else None
            self._counters.setdefault(counter.event_type, []).append((COUNTER_PREFIX + name, cond))
        self._agents: dict[str, AgentWindows] = {}
        self._max_agents = m.max_agents

        # Detectors, compiled.
        bl = config.baselines
        self._baselines = BaselineBook(bl)
        self._interval = bl.interval_seconds
        self._baseline_metrics = tuple(bl.metrics) if bl.enabled else ()
        rules = (
            [
                ZScoreRule(r, min_samples=bl.min_samples, variables=config.variables, clock=now)
                for r in config.anomaly_detection.rules
            ]
            if config.anomaly_detection.enabled
            else []
        )
        self._interval_rules = [r for r in rules if not r.per_event]
        self._event_rules = [r for r in rules if r.per_event]
        from redline.metrics.snapshot import metric_getter

        tracked = dict.fromkeys(
            [*self._baseline_metrics, *(r.metric for r in self._interval_rules)]
        )
        self._tracked_metrics = [(name, metric_getter(name)) for name in tracked]
        det = config.detectors
        self._loop = LoopDetector(det.loop, now) if det.loop.enabled else None
        self._stuck = StuckDetector(det.stuck, now) if det.stuck.enabled else None
        self._suspicious = (
            SuspiciousDetector(det.suspicious, now) if det.suspicious.enabled else None
        )
        self._pattern_detectors = bool(self._loop or self._stuck or self._suspicious)
        self._drift = DriftDetector(det.drift, now) if det.drift.enabled else None
        self._policies = (
            [
                KillPolicy(p, p.window_seconds or self.default_window)
                for p in ks.policies
                if p.scope == "agent"
            ]
            if ks.enabled
            else []
        )
        # Fleet policies act on totals across every writer: evaluated on the background
        # thread by one elected monitor (an advisory lock on a shared store), not per event.
        self._fleet_policies = [p for p in ks.policies if p.scope == "fleet"] if ks.enabled else []
        self._fleet_breached: set[str] = set()
        self._pending: list[Anomaly] = []
        self._anomaly_hooks: list[Callable[[Anomaly], object]] = []

        # Storage, kill state and the writer.
        self.store: Store = store if store is not None else _open_store(config)
        self._kills = KillSwitch(now, self.store)
        self._fail_closed = ks.fail_mode == "closed" and hasattr(self.store, "kill_state_age")
        self._stale_after = ks.stale_after_seconds
        self._default_ttl = ks.default_ttl_seconds
        st = config.storage
        self._writer = BackgroundWriter(
            self.store,
            queue_size=st.queue_size,
            batch_size=st.batch_size,
            flush_interval=st.flush_interval_seconds,
            tick_interval=ks.poll_interval_seconds,
            full_policy=st.full_policy,
            block_timeout=st.block_timeout_seconds,
            on_tick=self._tick,
            spill_path=st.spill_path or None,
        )
        self._replayed = self._writer.replay_spill()
        self._put = self._writer.put
        # A memory store has nothing to make durable: sync types only wait on real stores.
        self._sync_types = (
            frozenset(st.sync_types) if self.store.backend != "memory" else frozenset()
        )
        self._durability_sync = st.durability == "sync"
        self._no_wait = threading.local()  # set while acting on the recording thread
        self._batch_state = threading.local()
        self.bus = EventBus()
        al = config.alerts
        self.alerts = AlertManager(
            al,
            dead_letter_path=al.dead_letter_path or None,
            queue_size=al.queue_size,
            max_attempts=al.max_attempts,
            backoff_base=al.backoff_base_seconds,
            backoff_cap=al.backoff_cap_seconds,
            breaker_threshold=al.breaker_threshold,
            breaker_reset_seconds=al.breaker_reset_seconds,
        )
        self._alert_rules = [
            AlertRule(
                r,
                window=r.window_seconds or self.default_window,
                counters=m.counters,
                next_id=self.alerts.next_id,
            )
            for r in al.rules
        ]
        self._budgets = open_budgets(self)
        self._alert_interval = al.evaluation_interval_seconds
        self._next_alert_eval = 0.0
        self._ack_cursor: float | None = None

        # Counters (read by stats()).
        self._recorded = 0
        self._filtered = 0
        self._blocked = 0
        self._late = 0
        self._internal_errors = 0
        self._integration_errors: dict[str, int] = {}
        self._anomaly_count = 0
        self._kill_count = 0
        self._evicted_agents = 0

        self._baselines_dirty = False
        if bl.storage_path:
            self._load_baselines(Path(bl.storage_path))
        shutdown.register(self)
        if st.flush_on_sigterm:
            shutdown.install_sigterm_handler()
        self._exporters = start_exporters(self, config.exporters)
        self._fork_aware_store = isinstance(self.store, ForkAware)
        _lifecycle.after_fork_in_child(self._after_fork)
        self._ready = True

    def _after_fork(self) -> None:
        """In a forked child (gunicorn, Celery prefork, multiprocessing): fresh locks, the
        store's own connections, and a writer thread whose queue holds only the child's events.
        The duties run on that thread, so the child polls kills made elsewhere again. A monitor
        the parent had closed stays closed: nothing is reopened for it."""
        if self._closed:
            return
        self._lock = threading.Lock()
        self._batch_state = threading.local()
        self._no_wait = threading.local()
        self._kills.after_fork()
        self.bus.after_fork()
        if self._fork_aware_store:
            cast(ForkAware, self.store).after_fork()
        self._writer.after_fork()
        if self._budgets is not None:
            self._budgets.after_fork()

    # ------------------------------------------------------------------------------------
    # the hot path
    # ------------------------------------------------------------------------------------
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
        if self._pattern_detectors:
            name = action_name(ev)
            if name is not None:
                for detector in (self._suspicious, self._loop, self._stuck):
                    if detector is not None:
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
        if self._drift is not None:
            anomaly = self._drift.observe_interval(agent, totals)
            if anomaly is not None:
                self._pending.append(anomaly)

    # ------------------------------------------------------------------------------------
    # acting on anomalies
    # ------------------------------------------------------------------------------------
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

    def _scrub_fields(self, ev: AgentEvent) -> AgentEvent:
        """``ev`` with ``tool``, ``status`` and ``tags`` scrubbed: they reach labels and webhooks."""
        text = self._redactor.scrub_text
        tool = ev.tool if ev.tool is None else text(ev.tool)
        status = ev.status if ev.status is None else text(ev.status)
        tags = ev.tags
        # Most tags are clean: look first (memo hits), build a new list only if one changes.
        if tags and any(isinstance(t, str) and text(t) is not t for t in tags):
            tags = [text(t) if isinstance(t, str) else t for t in tags]
        if tool is ev.tool and status is ev.status and tags is ev.tags:
            return ev
        return _replace(ev, tool=tool, status=status, tags=tags)

    def _record_internal(self, ev: AgentEvent) -> None:
        """Store and publish a governance event the monitor made itself."""
        if self._redact is not None and ev.data:
            ev = _replace(ev, data=self._redact(ev.data))
        with self._lock:
            self._put(ev)
        if self.bus.active:
            self.bus.publish(ev)
        if ev.event_type in self._sync_types:
            if getattr(self._no_wait, "active", False):
                self._writer.wake()
            else:
                self._writer.flush(5.0)

    def _alert(
        self,
        *,
        kind: str,
        severity: str,
        title: str,
        message: str,
        agent: str,
        rule: str | None = None,
        session_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Alert:
        alert = Alert(
            id=self.alerts.next_id(),
            kind=kind,
            severity=severity,
            title=title,
            message=message,
            agent=agent,
            rule=rule,
            session_id=session_id,
            timestamp=self._now(),
            fingerprint=f"{kind}:{rule or ''}:{agent}",
            details=details or {},
        )
        self._record_internal(
            AgentEvent(
                timestamp=alert.timestamp,
                agent=agent,
                event_type="alert",
                session_id=session_id,
                level=severity,
                data=alert.to_dict(),
            )
        )
        self.alerts.notify(alert)
        return alert

    # ------------------------------------------------------------------------------------
    # kill switches
    # ------------------------------------------------------------------------------------
    def kill_agent(
        self, agent: str, reason: str = "", *, actor: str = "", ttl_seconds: float | None = None
    ) -> KillRecord:
        """Stop ``agent`` everywhere this store is shared; ``check()`` raises until revived."""
        return self._kill("agent", agent, reason, actor, ttl_seconds)

    def kill_session(
        self,
        session_id: str,
        reason: str = "",
        *,
        actor: str = "",
        ttl_seconds: float | None = None,
        agent: str | None = None,
    ) -> KillRecord:
        """Stop one session (of any agent); ``agent`` only labels the recorded kill event."""
        return self._kill("session", session_id, reason, actor, ttl_seconds, agent=agent)

    def kill_global(
        self, reason: str = "", *, actor: str = "", ttl_seconds: float | None = None
    ) -> KillRecord:
        """Stop every agent."""
        return self._kill("global", "*", reason, actor, ttl_seconds)

    def _kill(
        self,
        scope: str,
        target: str,
        reason: str,
        actor: str,
        ttl: float | None,
        anomaly: Anomaly | None = None,
        agent: str | None = None,
    ) -> KillRecord:
        ttl = ttl if ttl is not None else self._default_ttl
        if self._redact is not None and reason:
            # A reason is free text an operator or a policy wrote; it reaches every channel.
            reason = self._redactor.scrub_text(reason)
        rec = self._kills.kill(
            scope,
            target,
            reason=reason,
            actor=actor or "api",
            ttl_seconds=ttl,
            policy=anomaly.rule if anomaly is not None else None,
            persist=not getattr(self._no_wait, "active", False),
        )
        self._kill_count += 1
        if self._kills.committed(rec):
            self._announce_kill(rec, scope, target, reason, anomaly, agent)
        else:
            # The store did not take the kill in time: its evidence is queued without waiting
            # too (each wait would be another bounded stall on the same outage).
            prior = getattr(self._no_wait, "active", False)
            self._no_wait.active = True
            try:
                self._announce_kill(rec, scope, target, reason, anomaly, agent)
            finally:
                self._no_wait.active = prior
        return rec

    def _announce_kill(
        self,
        rec: KillRecord,
        scope: str,
        target: str,
        reason: str,
        anomaly: Anomaly | None,
        agent: str | None,
    ) -> None:
        """Record the kill event and raise its alert."""
        who = agent or (target if scope == "agent" else "*")
        self._record_internal(
            AgentEvent(
                timestamp=rec.created_at,
                agent=who,
                event_type="kill",
                session_id=target if scope == "session" else None,
                level="critical",
                data={
                    "scope": scope,
                    "target": target,
                    "reason": reason,
                    "actor": rec.actor,
                    "expires_at": rec.expires_at,
                    "policy": rec.policy,
                },
            )
        )
        what = "all agents" if scope == "global" else f"{scope} {target!r}"
        self._alert(
            kind="kill",
            severity=anomaly.severity if anomaly is not None else "critical",
            title=f"Killed {what}",
            message=reason or "no reason given",
            agent=who,
            rule=anomaly.rule if anomaly is not None else None,
            details={
                "scope": scope,
                "target": target,
                "actor": rec.actor,
                "expires_at": rec.expires_at,
            },
        )

    def revive(
        self, agent: str | None = None, session_id: str | None = None, *, actor: str = ""
    ) -> bool:
        """Lift the kill on ``agent`` and/or ``session_id``; True if anything was lifted.

        Reviving an agent starts its windows afresh and re-arms its policies, so the spike that
        tripped the switch does not trip it again on the next event.
        """
        if agent is None and session_id is None:
            raise ValueError("revive() needs an agent or a session_id (revive_global() for all)")
        lifted = False
        if agent is not None:
            lifted |= self._revive("agent", agent, actor)
        if session_id is not None:
            lifted |= self._revive("session", session_id, actor)
        return lifted

    def revive_global(self, *, actor: str = "") -> bool:
        """Lift the global kill; True if there was one."""
        return self._revive("global", "*", actor)

    def _revive(
        self,
        scope: str,
        target: str,
        actor: str,
        *,
        expired: bool = False,
        record: KillRecord | None = None,
    ) -> bool:
        rec = record if record is not None else self._kills.revive(scope, target)
        if scope == "agent":
            self.reset_metrics(target)
        elif scope == "global":
            # A fleet-wide stop is a fleet-wide fresh start: otherwise the next event re-kills.
            self.reset_metrics()
        else:
            for policy in self._policies:
                policy.rearm(session=target)
        if rec is None:
            return False
        who = target if scope == "agent" else "*"
        duration = self._now() - rec.created_at
        self._record_internal(
            AgentEvent(
                agent=who,
                timestamp=self._now(),
                event_type="revive",
                session_id=target if scope == "session" else None,
                level="warning",
                data={
                    "scope": scope,
                    "target": target,
                    "actor": actor or ("ttl" if expired else "api"),
                    "killed_at": rec.created_at,
                    "kill_reason": rec.reason,
                    "downtime_seconds": duration,
                    "expired": expired,
                },
            )
        )
        self._alert(
            kind="revive",
            severity="info",
            title=f"Revived {'all agents' if scope == 'global' else f'{scope} {target!r}'}",
            message=("kill expired" if expired else f"revived by {actor or 'api'}")
            + f" after {duration:.0f}s",
            agent=who,
            details={"scope": scope, "target": target},
        )
        return True

    def kill_for(self, agent: str, session_id: str | None = None) -> KillRecord | None:
        """The kill that stops ``agent`` (or its session) now, by precedence global, agent,
        session; ``None`` when it may run. O(1); the one definition of precedence."""
        return self._kills.covering(agent, session_id)

    def is_killed(self, agent: str, session_id: str | None = None) -> bool:
        """Whether a kill covers ``agent`` or its session. O(1).

        With ``kill_switch.fail_mode: closed``, also True while the kill state could not be
        refreshed from a shared store for longer than ``stale_after_seconds``.
        """
        if self._kills.covering(agent, session_id) is not None:
            return True
        return self._fail_closed and self._stale_kill_state() is not None

    def check(self, agent: str, session_id: str | None = None) -> None:
        """Raise :class:`AgentKilledError` if a kill covers ``agent``/``session_id``.

        Call it before every tool or LLM call; it costs a couple of dict lookups. With
        ``fail_mode: closed`` a stale kill state (a shared store unreachable for longer than
        ``stale_after_seconds``) fails closed too, as scope ``global`` by actor ``redline``.
        """
        rec = self._kills.covering(agent, session_id) if self._kills.active else None
        if rec is not None:
            raise AgentKilledError(rec.scope, rec.target, rec.reason, rec.actor)
        if self._budgets is not None:
            self._budgets.check(agent, session_id)
        if self._fail_closed:
            age = self._stale_kill_state()
            if age is not None:
                raise AgentKilledError(
                    "global", "*", f"kill state is {age:.0f}s old (fail_mode: closed)", "redline"
                )

    def _stale_kill_state(self) -> float | None:
        """The kill state's age when it is older than the staleness bound, else None."""
        age_of = getattr(self.store, "kill_state_age", None)
        if age_of is None:
            return None
        age = float(age_of())
        return age if age > self._stale_after else None

    def guard(
        self,
        agent: str,
        session_id: str | None = None,
        *,
        event_type: str = "tool_call",
        tool: str | None = None,
        estimate_usd: float | None = None,
        **fields: Any,
    ) -> Guard:
        """A context manager (and decorator) that checks, times and records a block of work.

        On entry it calls :meth:`check`; on exit it records one ``event_type`` event with the
        block's ``latency_ms`` and ``status`` (``"ok"``, or ``"error"`` with the exception type in
        ``data["error_type"]``). Exceptions propagate unchanged.

        With ``estimate_usd`` it also reserves that much before the block (raising
        :class:`~redline.BudgetExceededError` instead of running it) and commits what the
        events recorded inside the block cost.
        """
        return Guard(self, agent, session_id, event_type, tool, fields, estimate_usd)

    def kills(self) -> list[KillRecord]:
        """Every active kill record."""
        return self._kills.records()

    # ------------------------------------------------------------------------------------
    # background duties
    # ------------------------------------------------------------------------------------
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
        if self._budgets is not None:
            self._budgets.tick()

    # ------------------------------------------------------------------------------------
    # alert rules and their lifecycle
    # ------------------------------------------------------------------------------------
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

    def _publish_alert(self, alert: Alert, channels: list[str] | None = None) -> None:
        self._record_internal(
            AgentEvent(
                timestamp=alert.timestamp,
                agent=alert.agent,
                event_type="alert",
                session_id=alert.session_id,
                level=alert.severity,
                data=alert.to_dict(),
            )
        )
        self.alerts.notify(alert, channels=channels)

    def active_alerts(self) -> list[Alert]:
        """Rule alerts that are firing or acknowledged, newest first."""
        with self._lock:
            alerts = [a for rule in self._alert_rules for a in rule.active()]
        return sorted(alerts, key=lambda a: a.timestamp, reverse=True)

    def ack_alert(self, alert_id: str, by: str) -> Alert | None:
        """Acknowledge an alert (seed 001's ``acknowledge``): recorded, and sent to channels.

        Works on this monitor's live rule alerts, and on any alert found in the store (so the
        CLI and the server can acknowledge what a running agent raised; that monitor adopts the
        acknowledgement at its next evaluation). Returns the acknowledged alert, or None when
        there is no such open alert. Acknowledging an acknowledged alert returns it unchanged.
        """
        now = self._now()
        with self._lock:
            acked = next(
                (a for rule in self._alert_rules if (a := rule.acknowledge(alert_id, by, now))),
                None,
            )
        if acked is None:
            already = next(
                (a for a in self.active_alerts() if a.id == alert_id and a.state != "firing"),
                None,
            )
            if already is not None:  # idempotent: acknowledging twice changes nothing
                return already
            stored = self._last_alert_state(alert_id)
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

    # ------------------------------------------------------------------------------------
    # reads
    # ------------------------------------------------------------------------------------
    def get_metrics(
        self, agent: str | None = None, window: int | None = None, *, fleet: bool = False
    ) -> MetricSnapshot:
        """A snapshot of ``agent`` (or of the whole fleet) over ``window`` seconds.

        ``window`` defaults to ``metrics.default_window_seconds`` and is capped at
        ``max_window_seconds``. Configured windows answer in O(1); others sum their buckets.
        """
        now = self._now()
        seconds = min(window or self.default_window, self.max_window)
        if (fleet or agent is None) and hasattr(self.store, "fleet_snapshot"):
            return self._store_fleet_snapshot(seconds, now)
        with self._lock:
            if fleet or agent is None:
                parts: list[Totals] = []
                for w in self._agents.values():
                    parts.extend(self._window_parts(w, seconds, now))
                snap = snapshot_of("*", seconds, now, *parts)
            else:
                one = self._agents.get(agent)
                parts = self._window_parts(one, seconds, now) if one is not None else []
                snap = snapshot_of(agent, seconds, now, *parts)
            hand_off = bool(self._pending)
        if hand_off:
            # Reading rolled a window and a detector fired: the duties thread acts, not a read.
            self._writer.request_tick()
        return snap

    def _store_fleet_snapshot(self, seconds: int, now: float) -> MetricSnapshot:
        """The fleet over every writer of a shared store, from its per-minute rollup."""
        self.flush(5.0)
        fleet = self.store.fleet_snapshot(float(seconds), now).totals  # type: ignore[attr-defined]
        return MetricSnapshot(
            agent="*",
            window_seconds=seconds,
            timestamp=now,
            event_count=fleet.events,
            action_count=fleet.actions,
            denial_count=fleet.denials,
            denial_rate=fleet.denial_rate,
            error_count=fleet.errors,
            error_rate=fleet.error_rate,
            cost_total=fleet.cost,
            cost_per_minute=fleet.cost_per_minute,
            events_per_minute=fleet.events_per_minute,
            avg_latency_ms=fleet.avg_latency_ms,
            tokens_in=fleet.tokens_in,
            tokens_out=fleet.tokens_out,
            tokens_cached=fleet.tokens_cached,
            llm_call_count=fleet.llm_calls,
            tool_call_count=fleet.tool_calls,
        )

    def _window_parts(self, w: AgentWindows, seconds: int, now: float) -> list[Totals]:
        if seconds in self.windows:
            closed, cur = w.window(seconds, now)
            return [closed, cur]
        return [sum_recent(w, seconds, now)]

    def get_all_metrics(self, window: int | None = None) -> list[MetricSnapshot]:
        """One snapshot per agent seen, sorted by agent name."""
        with self._lock:
            agents = sorted(self._agents)
        return [self.get_metrics(a, window) for a in agents]

    def agents(self) -> list[str]:
        """Names of the agents with live windows."""
        with self._lock:
            return sorted(self._agents)

    def get_events(
        self,
        *,
        agent: str | None = None,
        event_type: str | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
        session_id: str | None = None,
        user: str | None = None,
        limit: int | None = 1000,
        order: str = "desc",
    ) -> list[dict[str, Any]]:
        """Stored events as dicts (with ``seq``), newest first unless ``order="asc"``.

        The peer returned the *oldest* N; Redline returns the newest N by default. ``since`` and
        ``until`` take epoch seconds, ISO 8601 (offsets honoured) or ages like ``"2h"``.
        """
        return [
            _full_dict(s)
            for s in self.events(
                agent=agent,
                event_type=event_type,
                since=since,
                until=until,
                session_id=session_id,
                user=user,
                limit=limit,
                order=order,
            )
        ]

    def events(
        self,
        *,
        agent: str | None = None,
        event_type: str | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
        session_id: str | None = None,
        user: str | None = None,
        limit: int | None = None,
        order: str = "desc",
        session: str | None = None,
    ) -> Iterator[StoredEvent]:
        """Stream stored events (flushes the queue first so what was recorded is visible)."""
        if order not in ("asc", "desc"):
            raise ValueError("order must be 'asc' or 'desc'")
        self.flush()
        now = self._now()
        query = EventQuery(
            agent=agent,
            session_id=session_id or session,
            event_type=event_type,
            user=user,
            since=parse_time(since, now=now),
            until=parse_time(until, now=now),
            limit=limit,
            order=order,
        )
        return self.store.query(query)

    def subscribe(self, handler: Handler, event_type: str | None = None) -> Callable[[], None]:
        """Call ``handler(event)`` for each recorded event (of ``event_type``, or all).

        Returns a function that unsubscribes. Handlers run on the recording thread.
        """
        return self.bus.subscribe(handler, event_type)

    def on_anomaly(self, hook: Callable[[Anomaly], object]) -> Callable[[], None]:
        """Call ``hook(anomaly)`` for every anomaly; returns a function that removes it."""
        self._anomaly_hooks.append(hook)
        return lambda: self._anomaly_hooks.remove(hook)

    def on_alert(self, hook: Callable[[Alert], object]) -> Callable[[], None]:
        """Call ``hook(alert)`` for every alert; returns a function that removes it."""
        return self.alerts.add_hook(hook)

    def baseline(self, agent: str, metric: str) -> dict[str, float] | None:
        """The baseline learned for ``metric`` of ``agent`` (mean, stddev, count), if any."""
        b = self._baselines.peek(agent, metric)
        if b is None:
            return None
        return {"mean": b.mean, "stddev": b.stddev, "count": float(b.count)}

    # -- read-only views for exporters: computed when read, nothing mirrored per event --------
    def agent_totals(self, window: int | None = None) -> dict[str, tuple[Totals, Totals]]:
        """Per agent, copies of its ``(lifetime, window)`` totals, each with the open bucket.

        ``lifetime`` runs from when the agent's windows were created (a revive or
        ``reset_metrics()`` starts it again); ``window`` is ``window`` seconds (default: the
        default window). Used by the Prometheus collector at scrape time.
        """
        now = self._now()
        seconds = min(window or self.default_window, self.max_window)
        out: dict[str, tuple[Totals, Totals]] = {}
        hand_off = False
        with self._lock:
            agents = list(self._agents.items())
        for agent, w in agents:
            # One agent per lock hold: a scrape never stalls record() for more than one copy.
            with self._lock:
                if self._agents.get(agent) is not w:
                    continue
                recent = Totals()
                for part in self._window_parts(w, seconds, now):
                    recent.add(part)
                life = w.lifetime_totals()
                out[agent] = (life, recent)
                if self._pending:
                    hand_off = True
        if hand_off:
            self._writer.request_tick()  # the duties thread acts on what the roll produced
        return out

    @property
    def last_write_at(self) -> float | None:
        """Wall-clock time of the writer's last committed batch (None before the first)."""
        return self._writer.last_write_at

    def note_integration_error(self, integration: str) -> None:
        """Count a failure a framework integration swallowed instead of breaking the agent."""
        self._integration_errors[integration] = self._integration_errors.get(integration, 0) + 1

    def stats(self) -> dict[str, Any]:
        """Redline's own health: what was recorded, queued, written, dropped, repaired, ..."""
        w = self._writer
        v = self._validator
        return {
            "recorded": self._recorded,
            "queued": w.queued,
            "written": w.written,
            "dropped": w.dropped,
            "spilled": w.spilled,
            "replayed_from_spill": self._replayed,
            "write_errors": w.write_errors,
            "quarantined": w.quarantined,
            "last_write_error": w.last_error,
            "repaired": sum(v.repaired.values()),
            "repaired_by_reason": dict(v.repaired),
            "rejected": sum(v.rejected.values()),
            "rejected_by_reason": dict(v.rejected),
            "redacted": self._redactor.redacted_count,
            "filtered": self._filtered,
            "blocked_while_killed": self._blocked,
            "late_events": self._late,
            "internal_errors": self._internal_errors,
            "integration_errors": sum(self._integration_errors.values()),
            "integration_errors_by_name": dict(self._integration_errors),
            "subscriber_errors": sum(self.bus.errors.values()),
            "unpriced": self._prices.unpriced,
            "unpriced_models": dict(self._prices.unknown),
            "budget_admitted": self._budgets.admitted if self._budgets else 0,
            "budget_denied": self._budgets.denied if self._budgets else 0,
            "budget_errors": self._budgets.errors if self._budgets else 0,
            "anomalies": self._anomaly_count,
            "kills": self._kill_count,
            "active_kills": len(self._kills.records()),
            "alerts_sent": self.alerts.sent,
            "alerts_failed": self.alerts.failed,
            "agents": len(self._agents),
            "evicted_agents": self._evicted_agents,
            "store": self.store.backend,
            "store_evicted": getattr(self.store, "evicted", 0),
        }

    def verify(self, *, public_key: str | None = None) -> VerifyReport:
        """Flush, then walk the store's hash chain and checkpoints (see ``redline.store.chain``).

        ``public_key`` pins the signer an auditor trusts (hex Ed25519); by default the key the
        store recorded is used. A store without a chain (memory) reports ``ok`` with a note.
        """
        self.flush()
        verify = getattr(self.store, "verify", None)
        if verify is None:
            return VerifyReport(
                ok=True, checked=0, detail=f"the {self.store.backend} store keeps no hash chain"
            )
        report: VerifyReport = verify(public_key=public_key)
        return report

    def prune(self, *, dry_run: bool = False, now: float | None = None) -> Any:
        """Apply retention per category (``retention`` in the config) to the store.

        Returns the store's ``PruneReport``; a store without retention support raises
        :class:`~redline.exceptions.StoreError`.
        """
        prune = getattr(self.store, "prune", None)
        if prune is None:
            raise StoreError(f"the {self.store.backend} store does not support pruning")
        self.flush()
        at = self._now() if now is None else now
        cutoffs = {
            category: at - days * 86_400.0
            for category, days in msgspec.structs.asdict(self.config.retention).items()
            if days is not None
        }
        return prune(cutoffs, dry_run=dry_run)

    def export(
        self,
        format: str,
        *,
        since: str | float | None = None,
        until: str | float | None = None,
        agent: str | None = None,
        session_id: str | None = None,
        user: str | None = None,
        event_type: str | None = None,
        output: Any = None,
        **options: Any,
    ) -> Any:
        """Flush, then export as ``soc2``, ``gdpr`` (needs ``user``), ``json``, ``csv`` or ``jsonl``.

        Returns the report as ``str``; with ``output`` (a path or a binary file) streams it there
        and returns the manifest dict. ``options``: ``progress``, ``total``, ``verify``,
        ``purposes`` (see :func:`redline.compliance.export` and docs/audit.md).
        """
        from redline.compliance import export

        self.flush()
        return export(
            self.store, format, since=since, until=until, agent=agent, session_id=session_id,
            user=user, event_type=event_type, output=output, config=self.config,
            now=self._now(), **options,
        )  # fmt: skip

    def reset_metrics(self, agent: str | None = None) -> None:
        """Forget window state (of one agent, or all) and re-arm policies; stored events stay.

        This is what the peer's ``flush()`` did; Redline's ``flush()`` makes events durable.
        """
        with self._lock:
            if agent is None:
                self._agents.clear()
            else:
                self._agents.pop(agent, None)
        for policy in self._policies:
            policy.rearm(agent)

    # ------------------------------------------------------------------------------------
    # lifecycle
    # ------------------------------------------------------------------------------------
    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until every event recorded so far is committed; False on timeout."""
        return self._writer.flush(timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, stop the writer, persist baselines and close the store. Idempotent."""
        if self._closed:
            return True
        self._closed = True
        self._ready = False
        if self._budgets is not None:
            self._budgets.close()  # pending spend written, threshold records queued
        ok = self._writer.close(timeout)
        self._exporters.close()
        ok = self.alerts.close(timeout) and ok
        path = self.config.baselines.storage_path
        learned = self._baselines_dirty or bool(self._event_rules and self._recorded)
        if path and learned:
            # Only a monitor that learned something writes: a short-lived one (a script, the
            # CLI) must not overwrite what the agents learned.
            self._save_baselines(Path(path))
        shutdown.unregister(self)
        return ok

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _load_baselines(self, path: Path) -> None:
        if not path.exists():
            return
        try:
            self._baselines.load(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("redline: could not load baselines from %s: %s", path, exc)

    def _save_baselines(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(json.dumps(self._baselines.to_dict()), encoding="utf-8")
            tmp.replace(path)
        except OSError as exc:
            log.warning("redline: could not save baselines to %s: %s", path, exc)


_EMPTY = Totals()


def _full_dict(stored: StoredEvent) -> dict[str, Any]:
    """A stored event with every field, defaults included, as the peer's ``get_events()`` gave."""
    out = stored.to_dict()
    for name in AgentEvent.__struct_fields__:
        if name not in out:
            out[name] = msgspec.to_builtins(getattr(stored.event, name))
    return out


def _open_store(config: MonitorConfig) -> Store:
    """The store the config asks for (the embedded default is memory when no path is given)."""
    st = config.storage
    backend = resolve_backend(st)
    if backend == "memory":
        return MemoryStore(max_events=st.max_events)
    from redline.store import open_store

    return open_store(config, backend)
