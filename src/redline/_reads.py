"""What the monitor answers: metrics, stored events, exports, verification, retention and
stats. Reads never act: no kill or alert comes from a read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from redline._pipeline import Pipeline
from redline.alerts.manager import Alert
from redline.bus import Handler
from redline.detect.anomaly import Anomaly
from redline.events import AgentEvent
from redline.exceptions import StoreError
from redline.metrics.snapshot import MetricSnapshot, snapshot_of
from redline.metrics.windows import AgentWindows, Totals, sum_recent
from redline.store.base import EventQuery, StoredEvent
from redline.store.chain import VerifyReport
from redline.timeparse import parse_time


class Reads(Pipeline):
    """Reads: metrics, events, exports, verification, stats. They never act."""

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


def _full_dict(stored: StoredEvent) -> dict[str, Any]:
    """A stored event with every field, defaults included, as the peer's ``get_events()`` gave."""
    out = stored.to_dict()
    for name in AgentEvent.__struct_fields__:
        if name not in out:
            out[name] = msgspec.to_builtins(getattr(stored.event, name))
    return out
