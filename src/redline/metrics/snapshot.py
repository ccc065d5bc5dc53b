"""What ``get_metrics()`` returns, and the metric names rules and policies may use.

Definitions follow the published peer where seed 000 is silent:
``cost_per_minute`` is the cost in the window divided by the window's length in minutes (not by
the time since the first event), ``denial_rate`` is denials ÷ (actions + denials),
``approval_rate`` is approval events ÷ all events. Redline adds ``error_rate`` (errors ÷ events),
``tool_failure_rate`` (failed tool calls ÷ tool calls), ``cache_hit_rate`` (cached ÷ input tokens),
latency quantiles from a 1 %-accurate sketch, and counts by type, tool and model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from redline.metrics.sketch import quantiles
from redline.metrics.windows import Totals

__all__ = ["METRIC_NAMES", "MetricGetter", "MetricSnapshot", "metric_getter", "snapshot_of"]


class MetricSnapshot(msgspec.Struct, kw_only=True):
    """Point-in-time metrics of one agent (or ``"*"``, the fleet) over one rolling window."""

    agent: str
    window_seconds: int
    timestamp: float
    event_count: int = 0
    action_count: int = 0
    denial_count: int = 0
    denial_rate: float = 0.0
    approval_count: int = 0
    approval_rate: float = 0.0
    error_count: int = 0
    error_rate: float = 0.0
    cost_total: float = 0.0
    cost_per_minute: float = 0.0
    events_per_minute: float = 0.0
    avg_latency_ms: float = 0.0
    p50_latency_ms: float = 0.0
    p95_latency_ms: float = 0.0
    p99_latency_ms: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    cache_hit_rate: float = 0.0
    llm_call_count: int = 0
    tool_call_count: int = 0
    tool_failure_count: int = 0
    tool_failure_rate: float = 0.0
    counts_by_type: dict[str, int] = msgspec.field(default_factory=dict)
    counts_by_tool: dict[str, int] = msgspec.field(default_factory=dict)
    cost_by_model: dict[str, float] = msgspec.field(default_factory=dict)
    counters: dict[str, int] = msgspec.field(default_factory=dict)
    last_event_at: float | None = None

    def to_dict(self) -> dict[str, object]:
        """A plain dict of every field (for JSON, tables and templates)."""
        result: dict[str, object] = msgspec.structs.asdict(self)
        return result


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def snapshot_of(agent: str, window: int, now: float, *parts: Totals) -> MetricSnapshot:
    """Build a snapshot from the totals that make up a window (closed total + open bucket)."""
    hists = [p.hist for p in parts if p.hist]
    t = Totals()
    for part in parts:
        t.add_scalars(part)
    p50, p95, p99 = quantiles(hists, t.lat_n, (0.50, 0.95, 0.99)) if hists else (0.0, 0.0, 0.0)
    types = t.types
    actions = types.get("action", 0)
    denials = types.get("denial", 0)
    approvals = types.get("approval_request", 0) + types.get("approval_response", 0)
    errors = types.get("error", 0)
    minutes = window / 60.0
    return MetricSnapshot(
        agent=agent,
        window_seconds=window,
        timestamp=now,
        event_count=t.count,
        action_count=actions,
        denial_count=denials,
        denial_rate=_ratio(denials, actions + denials),
        approval_count=approvals,
        approval_rate=_ratio(approvals, t.count),
        error_count=errors,
        error_rate=_ratio(errors, t.count),
        cost_total=t.cost,
        cost_per_minute=_ratio(t.cost, minutes),
        events_per_minute=_ratio(t.count, minutes),
        avg_latency_ms=_ratio(t.lat_sum, t.lat_n),
        p50_latency_ms=p50,
        p95_latency_ms=p95,
        p99_latency_ms=p99,
        tokens_in=t.tok_in,
        tokens_out=t.tok_out,
        tokens_cached=t.tok_cached,
        cache_hit_rate=_ratio(t.tok_cached, t.tok_in),
        llm_call_count=types.get("llm_call", 0),
        tool_call_count=t.tool_calls,
        tool_failure_count=t.tool_failures,
        tool_failure_rate=_ratio(t.tool_failures, t.tool_calls),
        counts_by_type={k: v for k, v in types.items() if not k.startswith("#")},
        counters={k[1:]: v for k, v in types.items() if k.startswith("#")},
        counts_by_tool={k: int(v[0]) for k, v in t.tools.items()},
        cost_by_model={k: v[1] for k, v in t.models.items() if v[1]},
        last_event_at=t.last_ts or None,
    )


#: ``getter(closed, open, window_seconds) -> value``: one metric without building a snapshot.
MetricGetter = Callable[[Totals, Totals, int], float]


def _type_count(name: str) -> MetricGetter:
    return lambda c, u, w: c.types.get(name, 0) + u.types.get(name, 0)


def _denial_rate(c: Totals, u: Totals, w: int) -> float:
    d = c.types.get("denial", 0) + u.types.get("denial", 0)
    a = c.types.get("action", 0) + u.types.get("action", 0)
    return _ratio(d, a + d)


def _error_rate(c: Totals, u: Totals, w: int) -> float:
    return _ratio(c.types.get("error", 0) + u.types.get("error", 0), c.count + u.count)


_FAST: Final[dict[str, MetricGetter]] = {
    "event_count": lambda c, u, w: c.count + u.count,
    "action_count": _type_count("action"),
    "denial_count": _type_count("denial"),
    "error_count": _type_count("error"),
    "llm_call_count": _type_count("llm_call"),
    "denial_rate": _denial_rate,
    "error_rate": _error_rate,
    "cost_total": lambda c, u, w: c.cost + u.cost,
    "cost_per_minute": lambda c, u, w: (c.cost + u.cost) * 60.0 / w,
    "events_per_minute": lambda c, u, w: (c.count + u.count) * 60.0 / w,
    "avg_latency_ms": lambda c, u, w: _ratio(c.lat_sum + u.lat_sum, c.lat_n + u.lat_n),
    "tokens_in": lambda c, u, w: c.tok_in + u.tok_in,
    "tokens_out": lambda c, u, w: c.tok_out + u.tok_out,
    "tokens_cached": lambda c, u, w: c.tok_cached + u.tok_cached,
    "tool_call_count": lambda c, u, w: c.tool_calls + u.tool_calls,
    "tool_failure_count": lambda c, u, w: c.tool_failures + u.tool_failures,
    "tool_failure_rate": lambda c, u, w: _ratio(
        c.tool_failures + u.tool_failures, c.tool_calls + u.tool_calls
    ),
    "cache_hit_rate": lambda c, u, w: _ratio(c.tok_cached + u.tok_cached, c.tok_in + u.tok_in),
}

#: Every numeric snapshot field a rule, policy or alert may name.
METRIC_NAMES: Final[frozenset[str]] = frozenset(
    name
    for name, ftype in zip(
        MetricSnapshot.__struct_fields__,
        (f.type for f in msgspec.inspect.type_info(MetricSnapshot).fields),  # type: ignore[attr-defined]
        strict=True,
    )
    if isinstance(ftype, (msgspec.inspect.IntType, msgspec.inspect.FloatType))
    and name not in {"window_seconds", "timestamp"}
)


def metric_getter(name: str) -> MetricGetter:
    """A getter for ``name``: O(1) for counters and rates, a full snapshot for quantiles."""
    fast = _FAST.get(name)
    if fast is not None:
        return fast
    if name not in METRIC_NAMES:
        raise KeyError(name)

    def slow(c: Totals, u: Totals, w: int) -> float:
        value = getattr(snapshot_of("", w, 0.0, c, u), name)
        return float(value)

    return slow
