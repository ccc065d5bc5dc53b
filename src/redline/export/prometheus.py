"""Prometheus exposition: a custom collector that reads Redline's live state at scrape time.

Nothing is mirrored per event. :class:`RedlineCollector` is a ``prometheus_client`` custom
collector: each scrape copies the per-agent lifetime and window totals the monitor already keeps
(:meth:`redline.Monitor.agent_totals`), its kill records, alert history and ``stats()``, and
builds metric families from them. The few counters the monitor does not keep (kills by what
triggered them, revives, anomalies by rule, alerts by severity, errors by type, kill→revive
durations) are counted here by bus subscribers on those event types only, which are rare.

The collector registers in a *private* :class:`~prometheus_client.CollectorRegistry`, never the
global one, so two monitors (or two test cases) in one process never collide.

Label cardinality is bounded: sessions, users and trace ids are never labels; the first
``max_agents`` agents (and ``max_tools`` tools, models, event types, error types and rules) keep
their own series and the rest are summed into ``other``. Membership is sticky, so an agent does
not jump between its own series and ``other`` from one scrape to the next.

Families (base units; ``_total`` counters, ``_seconds`` durations):

=======================================  =====================================================
``redline_events_total``                 counter {agent, event_type}: events counted in windows
``redline_cost_usd_total``               counter {agent, model}; cost without a model: ``unknown``
``redline_llm_tokens_total``             counter {agent, model, kind=input|output|cached}
``redline_tool_calls_total``             counter {agent, tool, status=ok|error}
``redline_tool_duration_seconds``        summary {agent, tool}: ``_sum``/``_count`` only
``redline_latency_seconds``              histogram {agent}: every event's ``latency_ms``
``redline_errors_total``                 counter {agent, error_type}: ``error`` events
``redline_denials_total``                counter {agent}
``redline_kills_total``                  counter {scope, reason_kind=manual|policy|anomaly|ttl}
``redline_revives_total``                counter {scope, reason_kind=manual|ttl}
``redline_killed``                       gauge {scope, target}: active kills (sessions summed)
``redline_anomalies_total``              counter {rule, kind}
``redline_alerts_total``                 counter {severity, kind}
``redline_alerts_firing``                gauge: distinct alerts raised in the last 5 minutes
``redline_mttr_seconds``                 summary: kill → revive durations
``redline_uptime_seconds``               gauge
``redline_cost_per_minute``              gauge {agent}: over the default window (USD/min)
``redline_error_rate``                   gauge {agent}: errors ÷ events in the default window
``redline_p95_latency_seconds``          gauge {agent}: over the default window
``redline_denial_rate``                  gauge {agent}: denials ÷ (actions + denials)
``redline_queue_depth`` ...              Redline's own health (see :meth:`collect`)
=======================================  =====================================================

Per-tool latency is a summary, not a histogram: the monitor keeps a per-tool sum and count but
one latency sketch per agent, not per tool. That sketch *is* exported as a real histogram
(``redline_latency_seconds``): each sketch bucket's representative value (within 1 % of every
sample in it) is placed in the first Prometheus ``le`` bucket that holds it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Final

try:
    from prometheus_client import CollectorRegistry
    from prometheus_client import make_asgi_app as _make_asgi_app
    from prometheus_client import start_http_server as _start_http_server
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
        SummaryMetricFamily,
    )
    from prometheus_client.samples import Exemplar
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "redline.export.prometheus needs prometheus-client: pip install 'redline[prometheus]'"
    ) from exc

from redline.events import AgentEvent
from redline.metrics.sketch import quantile, value_of
from redline.metrics.windows import Totals
from redline.tracing import current_trace

__all__ = [
    "DEFAULT_BUCKETS",
    "FAMILIES",
    "RedlineCollector",
    "make_asgi_app",
    "serve",
    "start_http_server",
]

log = logging.getLogger("redline.export.prometheus")

#: ``le`` bounds of ``redline_latency_seconds``: agent work runs from milliseconds to minutes.
# fmt: off
DEFAULT_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)
# fmt: on
OTHER: Final = "other"
#: An alert counts as firing for this long after it was raised (Redline has no resolve yet).
FIRING_SECONDS: Final = 300.0
_HEX_TRACE = re.compile(r"[0-9a-f]{12}|[0-9a-f]{32}", re.IGNORECASE)
_MAX_SMALL = 50  # distinct rules, error types, reasons, severities kept before folding

# name → (type, help, label names, unit)
# fmt: off
FAMILIES: Final[dict[str, tuple[str, str, tuple[str, ...], str]]] = {
    "redline_events_total": ("counter", "Events counted in the metrics windows.", ("agent", "event_type"), ""),
    "redline_cost_usd_total": ("counter", "Cost in US dollars.", ("agent", "model"), ""),
    "redline_llm_tokens_total": ("counter", "LLM tokens.", ("agent", "model", "kind"), ""),
    "redline_tool_calls_total": ("counter", "Tool calls by outcome.", ("agent", "tool", "status"), ""),
    "redline_tool_duration_seconds": ("summary", "Tool call latency (sum and count).", ("agent", "tool"), "seconds"),
    "redline_latency_seconds": ("histogram", "Latency of every event that reported one.", ("agent",), "seconds"),
    "redline_errors_total": ("counter", "Error events by error type (since the exporter started).", ("agent", "error_type"), ""),
    "redline_denials_total": ("counter", "Denied actions.", ("agent",), ""),
    "redline_kills_total": ("counter", "Kill switches thrown by this process.", ("scope", "reason_kind"), ""),
    "redline_revives_total": ("counter", "Kill switches lifted by this process.", ("scope", "reason_kind"), ""),
    "redline_killed": ("gauge", "Active kill switches (session kills summed under target=session).", ("scope", "target"), ""),
    "redline_anomalies_total": ("counter", "Anomalies detected.", ("rule", "kind"), ""),
    "redline_alerts_total": ("counter", "Alerts raised.", ("severity", "kind"), ""),
    "redline_alerts_firing": ("gauge", "Distinct alerts (by fingerprint) raised in the last 5 minutes.", (), ""),
    "redline_mttr_seconds": ("summary", "Time from kill to revive.", (), "seconds"),
    "redline_uptime_seconds": ("gauge", "Seconds since the monitor started.", (), "seconds"),
    "redline_window_seconds": ("gauge", "Length of the window the rate gauges cover.", (), "seconds"),
    "redline_agents": ("gauge", "Agents with live metrics windows.", (), ""),
    "redline_cost_per_minute": ("gauge", "Cost in USD per minute over the window.", ("agent",), ""),
    "redline_error_rate": ("gauge", "Error events / events over the window.", ("agent",), ""),
    "redline_p95_latency_seconds": ("gauge", "95th percentile latency over the window.", ("agent",), "seconds"),
    "redline_denial_rate": ("gauge", "Denials / (actions + denials) over the window.", ("agent",), ""),
    "redline_budget_spent_usd": ("gauge", "Budget spend in the current period, in US dollars (every process on the store).", ("budget", "scope", "key"), ""),
    "redline_budget_reserved_usd": ("gauge", "Budget reservations outstanding, in US dollars.", ("budget", "scope", "key"), ""),
    "redline_budget_limit_usd": ("gauge", "Budget limit per period, in US dollars.", ("budget", "scope", "key"), ""),
    "redline_budget_denials_total": ("counter", "Reservations refused by a budget in this process.", (), ""),
    "redline_events_recorded_total": ("counter", "Events passed to record() and accepted.", (), ""),
    "redline_events_written_total": ("counter", "Events committed to the store.", (), ""),
    "redline_events_blocked_total": ("counter", "Events recorded while a kill switch covered them.", (), ""),
    "redline_queue_depth": ("gauge", "Events waiting for the background writer.", (), ""),
    "redline_events_dropped_total": ("counter", "Events dropped because the writer queue was full.", (), ""),
    "redline_writer_errors_total": ("counter", "Failed store writes (each retried).", (), ""),
    "redline_writer_lag_seconds": ("gauge", "Seconds since the last write while events wait (0 when idle).", (), "seconds"),
    "redline_alert_channel_failures_total": ("counter", "Alert deliveries given up, by channel.", ("channel",), ""),
    "redline_events_repaired_total": ("counter", "Bad events repaired and kept.", ("reason",), ""),
    "redline_events_rejected_total": ("counter", "Bad events rejected.", ("reason",), ""),
    "redline_internal_errors_total": ("counter", "Failures inside record() the agent never saw.", (), ""),
    "redline_subscriber_errors_total": ("counter", "Bus subscribers that raised.", (), ""),
}
# fmt: on


class _Slots:
    """A sticky cap on distinct label values: the first ``cap`` keep their own series.

    Candidates are admitted heaviest first (ties by name) while there is room; a value that is
    no longer present frees its slot. Everything else is labelled ``other``.
    """

    __slots__ = ("_cap", "_kept")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._kept: dict[str, None] = {}

    def assign(self, weights: dict[str, float]) -> dict[str, str]:
        kept = self._kept
        for gone in [k for k in kept if k not in weights]:
            del kept[gone]
        if len(kept) < self._cap:
            fresh = sorted((k for k in weights if k not in kept), key=lambda k: (-weights[k], k))
            for name in fresh[: self._cap - len(kept)]:
                kept[name] = None
        return {k: (k if k in kept else OTHER) for k in weights}

    def label(self, name: str) -> str:
        """Label for a name seen once (for bus counters): admitted while there is room."""
        kept = self._kept
        if name in kept:
            return name
        if len(kept) < self._cap:
            kept[name] = None
            return name
        return OTHER


class _Counters:
    """Counters the monitor does not keep, fed by bus subscribers on rare event types."""

    def __init__(self, max_agents: int) -> None:
        self.lock = threading.Lock()
        self.kills: dict[tuple[str, str], float] = {}
        self.kill_exemplars: dict[tuple[str, str], Exemplar] = {}
        self.revives: dict[tuple[str, str], float] = {}
        self.anomalies: dict[tuple[str, str], float] = {}
        self.anomaly_exemplars: dict[tuple[str, str], Exemplar] = {}
        self.alerts: dict[tuple[str, str], float] = {}
        self.errors: dict[tuple[str, str], float] = {}
        self.mttr_count = 0
        self.mttr_sum = 0.0
        self.error_agents = _Slots(max_agents)
        self.error_types = _Slots(_MAX_SMALL)
        self.rules = _Slots(_MAX_SMALL)
        self.small = _Slots(_MAX_SMALL)


def _trace_exemplar(event: AgentEvent) -> Exemplar | None:
    """An exemplar naming the event's trace (or the trace current when it was published)."""
    trace_id = event.trace_id
    if not trace_id:
        current = current_trace()
        if current is None:
            return None
        trace_id = current.w3c_trace_id
    elif _HEX_TRACE.fullmatch(trace_id):
        trace_id = trace_id.lower().rjust(32, "0")
    return Exemplar({"trace_id": trace_id[:64]}, 1.0, event.timestamp)


def reason_kind(actor: str) -> str:
    """What threw a kill switch, from the actor the monitor recorded.

    ``policy:<name>`` → ``policy``; ``<detector>:<rule>`` (zscore, loop, stuck, suspicious,
    drift) → ``anomaly``; ``ttl`` → ``ttl``; a person or the API → ``manual``.
    """
    if actor == "ttl":
        return "ttl"
    head, sep, _ = actor.partition(":")
    if not sep:
        return "manual"
    return "policy" if head == "policy" else "anomaly"


class RedlineCollector:
    """A ``prometheus_client`` custom collector over one :class:`~redline.Monitor`.

    ``RedlineCollector(monitor)`` registers itself in :attr:`registry`, a private
    ``CollectorRegistry``; pass ``registry=`` to use another (never the global default unless you
    mean it). ``buckets`` sets the ``le`` bounds of ``redline_latency_seconds``. Call
    :meth:`close` to unsubscribe from the monitor's bus.
    """

    def __init__(
        self,
        monitor: Any,
        *,
        max_agents: int = 200,
        max_tools: int = 50,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if max_agents < 1 or max_tools < 1:
            raise ValueError("max_agents and max_tools must be at least 1")
        bounds = sorted(float(b) for b in buckets if b != float("inf"))
        if not bounds:
            raise ValueError("buckets needs at least one finite bound")
        self._monitor = monitor
        self._bounds = bounds
        self._le = [_le(b) for b in bounds] + ["+Inf"]
        self._bucket_index: dict[int, int] = {}
        self._agents = _Slots(max_agents)
        self._tools = _Slots(max_tools)
        self._models = _Slots(max_tools)
        self._types = _Slots(max_tools)
        self._killed_agents = _Slots(max_agents)
        self._channels = _Slots(_MAX_SMALL)
        self._budget_keys = _Slots(max_agents)
        self._collect_lock = threading.Lock()
        self._counters = _Counters(max_agents)
        self._unsubscribe = [
            monitor.subscribe(self._on_kill, "kill"),
            monitor.subscribe(self._on_revive, "revive"),
            monitor.subscribe(self._on_anomaly, "anomaly"),
            monitor.subscribe(self._on_alert, "alert"),
            monitor.subscribe(self._on_error, "error"),
        ]
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    # -- bus subscribers (rare event types only) ---------------------------------------------
    def _on_kill(self, event: AgentEvent) -> None:
        data = event.data
        key = (str(data.get("scope", "agent")), reason_kind(str(data.get("actor", ""))))
        exemplar = _trace_exemplar(event)
        c = self._counters
        with c.lock:
            c.kills[key] = c.kills.get(key, 0.0) + 1.0
            if exemplar is not None:
                c.kill_exemplars[key] = exemplar

    def _on_revive(self, event: AgentEvent) -> None:
        data = event.data
        kind = "ttl" if data.get("expired") else "manual"
        key = (str(data.get("scope", "agent")), kind)
        downtime = data.get("downtime_seconds")
        c = self._counters
        with c.lock:
            c.revives[key] = c.revives.get(key, 0.0) + 1.0
            if isinstance(downtime, (int, float)) and downtime >= 0:
                c.mttr_count += 1
                c.mttr_sum += float(downtime)

    def _on_anomaly(self, event: AgentEvent) -> None:
        data = event.data
        exemplar = _trace_exemplar(event)
        c = self._counters
        with c.lock:
            key = (
                c.rules.label(str(data.get("rule", ""))),
                c.small.label(str(data.get("kind", ""))),
            )
            c.anomalies[key] = c.anomalies.get(key, 0.0) + 1.0
            if exemplar is not None:
                c.anomaly_exemplars[key] = exemplar

    def _on_alert(self, event: AgentEvent) -> None:
        data = event.data
        c = self._counters
        with c.lock:
            key = (
                c.small.label(str(data.get("severity", event.level or ""))),
                c.small.label(str(data.get("kind", ""))),
            )
            c.alerts[key] = c.alerts.get(key, 0.0) + 1.0

    def _on_error(self, event: AgentEvent) -> None:
        if event.killed_scope is not None:
            return  # stored as evidence, not counted (as in the windows)
        data = event.data
        error_type = data.get("error_type") or data.get("type") or event.status or "unknown"
        c = self._counters
        with c.lock:
            key = (c.error_agents.label(event.agent), c.error_types.label(str(error_type)))
            c.errors[key] = c.errors.get(key, 0.0) + 1.0

    def close(self) -> None:
        """Stop counting bus events (the registry keeps serving what was counted)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    # -- prometheus_client's collector protocol -------------------------------------------------
    def describe(self) -> list[Metric]:
        """The families this collector yields, without samples (for the registry's name check)."""
        return [_family(name) for name in FAMILIES]

    def collect(self) -> Iterator[Metric]:
        """Build every family from the monitor's live state; O(agents × tools) per scrape."""
        with self._collect_lock:  # the sticky slot tables are not shared between scrapes
            return iter(self._collect())

    def _collect(self) -> list[Metric]:
        m = self._monitor
        now = m.clock.time()
        window = min(m.default_window, m.max_window)
        totals = m.agent_totals(window)
        n_agents = len(totals)
        folded = self._fold(totals)
        fams: dict[str, Any] = {name: _family(name) for name in FAMILIES}

        tool_w: dict[str, float] = {}
        model_w: dict[str, float] = {}
        type_w: dict[str, float] = {}
        for life, _ in folded.values():
            for tool, row in life.tools.items():
                tool_w[tool] = tool_w.get(tool, 0.0) + row[0]
            for model, mrow in life.models.items():
                model_w[model] = model_w.get(model, 0.0) + mrow[0]
            for etype, n in life.types.items():
                type_w[etype] = type_w.get(etype, 0.0) + n
        tools = self._tools.assign(tool_w)
        models = self._models.assign(model_w)
        types = self._types.assign(type_w)

        for agent, (life, recent) in sorted(folded.items()):
            self._agent_samples(fams, agent, life, recent, window, tools, models, types)

        self._governance(fams, now)
        self._budgets(fams)
        self._health(fams, now)
        fams["redline_uptime_seconds"].add_metric([], max(0.0, now - m.started_at))
        fams["redline_window_seconds"].add_metric([], float(window))
        fams["redline_agents"].add_metric([], float(n_agents))
        return list(fams.values())

    # -- the parts of a scrape ----------------------------------------------------------------
    def _fold(self, totals: dict[str, tuple[Totals, Totals]]) -> dict[str, tuple[Totals, Totals]]:
        """Agents past the cap summed into ``other`` (the totals are copies: safe to add into)."""
        labels = self._agents.assign({a: float(t[0].count) for a, t in totals.items()})
        folded: dict[str, tuple[Totals, Totals]] = {}
        for agent, (life, recent) in totals.items():
            label = labels[agent]
            have = folded.get(label)
            if have is None:
                folded[label] = (life, recent)
            else:
                have[0].add(life)
                have[1].add(recent)
        return folded

    def _agent_samples(
        self,
        fams: dict[str, Any],
        agent: str,
        life: Totals,
        recent: Totals,
        window: int,
        tools: dict[str, str],
        models: dict[str, str],
        types: dict[str, str],
    ) -> None:
        events: dict[str, float] = {}
        for etype, n in life.types.items():
            label = types[etype]
            events[label] = events.get(label, 0.0) + n
        fam = fams["redline_events_total"]
        for label, total in sorted(events.items()):
            fam.add_metric([agent, label], total)

        cost: dict[str, float] = {}
        toks: dict[str, list[float]] = {}
        for model, (_calls, mcost, tin, tout, tcached) in life.models.items():
            label = models[model]
            cost[label] = cost.get(label, 0.0) + mcost
            row = toks.setdefault(label, [0.0, 0.0, 0.0])
            row[0] += tin
            row[1] += tout
            row[2] += tcached
        # Cost and tokens of events that named no model. Rounded so float noise in the
        # subtraction never reads as a counter reset.
        rest_cost = round(life.cost - sum(mrow[1] for mrow in life.models.values()), 9)
        if rest_cost > 0:
            cost["unknown"] = cost.get("unknown", 0.0) + rest_cost
        rest = [
            life.tok_in - sum(r[2] for r in life.models.values()),
            life.tok_out - sum(r[3] for r in life.models.values()),
            life.tok_cached - sum(r[4] for r in life.models.values()),
        ]
        if any(v > 0 for v in rest):
            row = toks.setdefault("unknown", [0.0, 0.0, 0.0])
            for i in range(3):
                row[i] += max(rest[i], 0)
        fam = fams["redline_cost_usd_total"]
        for label, v in sorted(cost.items()):
            fam.add_metric([agent, label], v)
        fam = fams["redline_llm_tokens_total"]
        for label, row in sorted(toks.items()):
            for kind, v in zip(("input", "output", "cached"), row, strict=True):
                fam.add_metric([agent, label, kind], v)

        by_tool: dict[str, list[float]] = {}
        for tool, trow in life.tools.items():
            acc = by_tool.setdefault(tools[tool], [0.0, 0.0, 0.0, 0.0])
            for i in range(4):
                acc[i] += trow[i]
        calls = fams["redline_tool_calls_total"]
        durations = fams["redline_tool_duration_seconds"]
        for label, (ncalls, failed, lat_sum, lat_n) in sorted(by_tool.items()):
            calls.add_metric([agent, label, "ok"], ncalls - failed)
            calls.add_metric([agent, label, "error"], failed)
            durations.add_metric([agent, label], lat_n, lat_sum / 1000.0)

        if life.lat_n:
            fams["redline_latency_seconds"].add_metric(
                [agent], self._buckets(life.hist), life.lat_sum / 1000.0
            )
        fams["redline_denials_total"].add_metric([agent], life.types.get("denial", 0))

        rtypes = recent.types
        denials = rtypes.get("denial", 0)
        actions = rtypes.get("action", 0)
        fams["redline_cost_per_minute"].add_metric([agent], recent.cost * 60.0 / window)
        fams["redline_error_rate"].add_metric(
            [agent], rtypes.get("error", 0) / recent.count if recent.count else 0.0
        )
        fams["redline_denial_rate"].add_metric(
            [agent], denials / (actions + denials) if actions + denials else 0.0
        )
        fams["redline_p95_latency_seconds"].add_metric(
            [agent], quantile(recent.hist, recent.lat_n, 0.95) / 1000.0
        )

    def _buckets(self, hist: dict[int, int]) -> list[tuple[str, float]]:
        """Re-bucket a latency sketch (milliseconds) into cumulative ``le`` buckets (seconds)."""
        counts = [0] * (len(self._bounds) + 1)
        index = self._bucket_index
        bounds = self._bounds
        for bucket, n in hist.items():
            i = index.get(bucket)
            if i is None:
                seconds = value_of(bucket) / 1000.0
                i = next((j for j, b in enumerate(bounds) if seconds <= b), len(bounds))
                if len(index) < 10_000:
                    index[bucket] = i
            counts[i] += n
        out: list[tuple[str, float]] = []
        running = 0
        for le, n in zip(self._le, counts, strict=True):
            running += n
            out.append((le, float(running)))
        return out

    def _governance(self, fams: dict[str, Any], now: float) -> None:
        m = self._monitor
        c = self._counters
        with c.lock:
            kills = dict(c.kills)
            kill_ex = dict(c.kill_exemplars)
            revives = dict(c.revives)
            anomalies = dict(c.anomalies)
            anomaly_ex = dict(c.anomaly_exemplars)
            alerts = dict(c.alerts)
            errors = dict(c.errors)
            mttr = (c.mttr_count, c.mttr_sum)
        _counter(fams["redline_kills_total"], kills, kill_ex)
        _counter(fams["redline_revives_total"], revives)
        _counter(fams["redline_anomalies_total"], anomalies, anomaly_ex)
        _counter(fams["redline_alerts_total"], alerts)
        _counter(fams["redline_errors_total"], errors)
        fams["redline_mttr_seconds"].add_metric([], mttr[0], mttr[1])

        killed: dict[tuple[str, str], float] = {}
        records = list(m.kills())
        agent_labels = self._killed_agents.assign(
            {r.target: 1.0 for r in records if r.scope == "agent"}
        )
        for rec in records:
            if rec.expired(now):
                continue
            if rec.scope == "session":
                key = ("session", "session")
            elif rec.scope == "agent":
                key = ("agent", agent_labels.get(rec.target, OTHER))
            else:
                key = (rec.scope, "*")
            killed[key] = killed.get(key, 0.0) + 1.0
        fam = fams["redline_killed"]
        for key, v in sorted(killed.items()):
            fam.add_metric(list(key), v)

        horizon = now - FIRING_SECONDS
        firing = {
            a.fingerprint or a.id
            for a in list(m.alerts.history)
            if a.state == "firing" and a.severity != "info" and a.timestamp >= horizon
        }
        fams["redline_alerts_firing"].add_metric([], float(len(firing)))

    def _budgets(self, fams: dict[str, Any]) -> None:
        """Spend, holds and limit per budget key (keys past the cap summed under ``other``)."""
        m = self._monitor
        if not getattr(m, "has_budgets", False):
            return
        fams["redline_budget_denials_total"].add_metric([], m.stats()["budget_denied"])
        try:
            states = m.budgets()
        except Exception:  # a ledger that cannot be read: the scrape still answers
            log.warning("redline: budget state unavailable for this scrape", exc_info=True)
            return
        labels = self._budget_keys.assign(
            {f"{s.name}\x00{s.key}": s.spent_usd + s.reserved_usd for s in states}
        )
        rows: dict[tuple[str, str, str], list[float]] = {}
        for st in states:
            key = st.key if labels.get(f"{st.name}\x00{st.key}") != OTHER else OTHER
            row = rows.setdefault((st.name, st.scope, key), [0.0, 0.0, st.limit_usd])
            row[0] += st.spent_usd
            row[1] += st.reserved_usd
        for labelset, (spent, reserved, limit) in sorted(rows.items()):
            fams["redline_budget_spent_usd"].add_metric(list(labelset), spent)
            fams["redline_budget_reserved_usd"].add_metric(list(labelset), reserved)
            if labelset[2] != OTHER:
                fams["redline_budget_limit_usd"].add_metric(list(labelset), limit)

    def _health(self, fams: dict[str, Any], now: float) -> None:
        m = self._monitor
        s = m.stats()
        fams["redline_events_recorded_total"].add_metric([], s["recorded"])
        fams["redline_events_written_total"].add_metric([], s["written"])
        fams["redline_events_blocked_total"].add_metric([], s["blocked_while_killed"])
        fams["redline_queue_depth"].add_metric([], s["queued"])
        fams["redline_events_dropped_total"].add_metric([], s["dropped"])
        fams["redline_writer_errors_total"].add_metric([], s["write_errors"])
        fams["redline_internal_errors_total"].add_metric([], s["internal_errors"])
        fams["redline_subscriber_errors_total"].add_metric([], s["subscriber_errors"])
        lag = 0.0
        if s["queued"]:
            last = m.last_write_at
            lag = max(0.0, time.time() - (last if last is not None else m.started_at))
        fams["redline_writer_lag_seconds"].add_metric([], lag)
        failures: dict[str, float] = {}
        channels = m.alerts.stats().get("channels", {})
        labels = self._channels.assign(dict.fromkeys(channels, 1.0))
        for name, counts in channels.items():
            label = labels[name]
            failures[label] = failures.get(label, 0.0) + float(counts.get("failed", 0))
        hooks = float(getattr(m.alerts, "hook_errors", 0))
        if hooks:
            failures["hooks"] = failures.get("hooks", 0.0) + hooks
        fam = fams["redline_alert_channel_failures_total"]
        for name, v in sorted(failures.items()):
            fam.add_metric([name], v)
        for key, family in (
            ("repaired_by_reason", "redline_events_repaired_total"),
            ("rejected_by_reason", "redline_events_rejected_total"),
        ):
            fam = fams[family]
            for reason, v in sorted(s[key].items()):
                fam.add_metric([reason], v)

    # -- serving -----------------------------------------------------------------------------
    def generate(self, *, openmetrics: bool = False) -> tuple[bytes, str]:
        """``(body, content_type)`` of one scrape, in the classic text or OpenMetrics format."""
        if openmetrics:
            from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST
            from prometheus_client.openmetrics.exposition import generate_latest as om_latest

            body: bytes = om_latest(self.registry)  # type: ignore[no-untyped-call]  # untyped upstream
            return body, CONTENT_TYPE_LATEST
        from prometheus_client.exposition import CONTENT_TYPE_LATEST as TEXT
        from prometheus_client.exposition import generate_latest

        return generate_latest(self.registry), TEXT


def _le(bound: float) -> str:
    """``le`` label text as prometheus_client writes it (``0.5``, ``1.0``, ``300.0``)."""
    return repr(float(bound))


def _family(name: str) -> Metric:
    typ, doc, labels, unit = FAMILIES[name]
    if typ == "counter":
        return CounterMetricFamily(name, doc, labels=labels, unit=unit)
    if typ == "gauge":
        return GaugeMetricFamily(name, doc, labels=labels, unit=unit)
    if typ == "summary":
        return SummaryMetricFamily(name, doc, labels=labels, unit=unit)
    return HistogramMetricFamily(name, doc, labels=labels, unit=unit)


def _counter(
    fam: Any,
    values: dict[tuple[str, str], float],
    exemplars: dict[tuple[str, str], Exemplar] | None = None,
) -> None:
    for key, v in sorted(values.items()):
        ex = exemplars.get(key) if exemplars else None
        fam.add_metric(list(key), v, exemplar=ex)


def serve(collector: RedlineCollector, port: int, addr: str = "127.0.0.1") -> Any:
    """Serve ``collector``'s registry on ``addr:port`` from a daemon thread; returns the server.

    ``port=0`` picks a free port (``server.server_address[1]``). Stop it with
    ``server.shutdown(); server.server_close()``.
    """
    started: tuple[Any, Any] = _start_http_server(port, addr=addr, registry=collector.registry)
    server = started[0]
    server.redline_collector = collector
    return server


def start_http_server(
    monitor: Any,
    port: int,
    addr: str = "127.0.0.1",
    *,
    max_agents: int = 200,
    max_tools: int = 50,
) -> Any:
    """Expose ``monitor`` at ``http://addr:port/metrics`` (a stdlib server on a daemon thread).

    Returns the server (``shutdown()`` and ``server_close()`` stop it; its collector is
    ``server.redline_collector``). Loopback by default: bind wider on purpose.
    """
    collector = RedlineCollector(monitor, max_agents=max_agents, max_tools=max_tools)
    return serve(collector, port, addr)


def make_asgi_app(monitor: Any, *, max_agents: int = 200, max_tools: int = 50) -> Any:
    """An ASGI app serving ``monitor``'s metrics (mount it at ``/metrics`` in Starlette)."""
    collector = RedlineCollector(monitor, max_agents=max_agents, max_tools=max_tools)
    app: Any = _make_asgi_app(registry=collector.registry)
    app.redline_collector = collector
    return app
