"""What every part of the monitor shares: the parts built once from config (``__init__``),
fork hooks, and the internal record, alert and reset paths the parts act through.

:class:`~redline.monitor.Monitor` is the façade; its methods live with the idea they hold
(:mod:`redline._pipeline`, :mod:`redline.control._switches`, :mod:`redline._duties`,
:mod:`redline._reads`), each a layer over this one.
"""

from __future__ import annotations

import json
import logging
import operator
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import msgspec

from redline import _lifecycle, shutdown
from redline.alerts.groups import AlertGroups
from redline.alerts.manager import Alert, AlertManager
from redline.alerts.rules import COUNTER_PREFIX, AlertRule
from redline.bus import EventBus
from redline.clock import Clock, SystemClock
from redline.config import MonitorConfig, resolve_backend
from redline.control.budgets.facade import open_budgets
from redline.control.killswitch import KillSwitch
from redline.control.policies import KillPolicy
from redline.detect.anomaly import Anomaly
from redline.detect.conditions import Condition, compile_condition
from redline.detect.registry import build_detectors
from redline.detect.zscore import BaselineBook, ZScoreRule
from redline.events import GOVERNANCE_TYPES, AgentEvent
from redline.export.config import start_exporters
from redline.metrics.windows import AgentWindows, Totals
from redline.pricing import PriceTable
from redline.redaction import Redactor
from redline.store.base import ForkAware, Store
from redline.store.memory import MemoryStore
from redline.validation import EventValidator
from redline.writer import BackgroundWriter

if TYPE_CHECKING:
    from redline.monitor import Monitor

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
_EMPTY = Totals()


class MonitorCore:
    """The parts of one monitor, built once from its config, and the paths they share."""

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
        # Detectors (redline.detect.registry), built once; the pipeline loops over a tuple.
        self._action_detectors, self._interval_detectors = build_detectors(config.detectors, now)
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
        self._budgets = open_budgets(cast("Monitor", self))
        self._groups = AlertGroups(
            repeat_seconds=al.group_repeat_seconds, quiet_seconds=al.group_quiet_seconds
        )
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
        shutdown.register(cast("Monitor", self))
        if st.flush_on_sigterm:
            shutdown.install_sigterm_handler()
        self._exporters = start_exporters(self, config.exporters)
        self._fork_aware_store = isinstance(self.store, ForkAware)
        _lifecycle.after_fork_in_child(self._after_fork)
        self._ready = True

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until every event recorded so far is committed; False on timeout."""
        return self._writer.flush(timeout)

    def _tick(self) -> None:
        """The duties (:class:`redline._duties.Duties`); runs on the writer's thread."""
        raise NotImplementedError

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
        self._groups.after_fork()
        if self._fork_aware_store:
            cast(ForkAware, self.store).after_fork()
        self._writer.after_fork()
        if self._budgets is not None:
            self._budgets.after_fork()

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
        alert, tell = self._groups.join(alert, alert.timestamp)
        if not tell:
            return alert  # a repeat of an open group: counted, stored by the duties
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

    def _publish_alert(self, alert: Alert, channels: list[str] | None = None) -> None:
        self._store_alert(alert)
        self.alerts.notify(alert, channels=channels)

    def _store_alert(self, alert: Alert) -> None:
        """Record an alert's current state (an ``alert`` event) without notifying anyone."""
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


def _open_store(config: MonitorConfig) -> Store:
    """The store the config asks for (the embedded default is memory when no path is given)."""
    st = config.storage
    backend = resolve_backend(st)
    if backend == "memory":
        return MemoryStore(max_events=st.max_events, max_bytes=st.max_memory_bytes)
    from redline.store import open_store

    return open_store(config, backend)
