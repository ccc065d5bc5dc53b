"""Specification of rolling-window metrics: windows, snapshots, the latency sketch."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from redline import METRIC_NAMES, AgentEvent, MetricSnapshot, Monitor, parse_config
from redline.metrics.sketch import ACCURACY, bucket_of, quantile, value_of
from redline.metrics.snapshot import metric_getter, snapshot_of
from redline.metrics.windows import AgentWindows, Totals, sum_recent
from redline.testing import ManualClock

NOW = 1_700_000_040.0  # a whole minute, so baseline intervals line up with the clock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def monitor(clock: ManualClock, **sections: Any) -> Monitor:
    return Monitor(parse_config(sections), clock=clock)


def ev(clock: ManualClock, **fields: Any) -> AgentEvent:
    fields.setdefault("agent", "a")
    fields.setdefault("timestamp", clock.time())
    return AgentEvent(**fields)


# --- window expiry ----------------------------------------------------------------------------


def test_an_event_counts_for_exactly_the_window(clock: ManualClock) -> None:
    """An event stays in a 300 s window for 300 s and leaves it at the 300th second."""
    m = monitor(clock)
    m.record(ev(clock, cost_usd=1.0))
    clock.advance(299)
    assert m.get_metrics("a").event_count == 1
    clock.advance(1)
    snap = m.get_metrics("a")
    assert (snap.event_count, snap.cost_total, snap.action_count) == (0, 0.0, 0)
    m.close()


def test_expiry_happens_without_new_events(clock: ManualClock) -> None:
    """Reading metrics alone ages the window; no new event is needed to expire old ones."""
    m = monitor(clock, metrics={"default_window_seconds": 60})
    for _ in range(5):
        m.record(ev(clock))
        clock.advance(10)
    assert m.get_metrics("a").event_count == 5
    clock.advance(25)  # now t+75: the events at t and t+10 are 60 s old or more
    assert m.get_metrics("a").event_count == 3
    m.close()


def test_expired_windows_are_exactly_empty(clock: ManualClock) -> None:
    """Floating-point sums do not drift: an emptied window reports exactly zero cost."""
    m = monitor(clock)
    for _ in range(10):
        m.record(ev(clock, cost_usd=0.1, latency_ms=0.3))
        clock.advance(1)
    clock.advance(300)
    snap = m.get_metrics("a")
    assert (snap.cost_total, snap.avg_latency_ms, snap.p99_latency_ms) == (0.0, 0.0, 0.0)
    m.close()


def test_several_windows_are_kept_at_once(clock: ManualClock) -> None:
    """With ``metrics.windows``, a 60 s and a 300 s view of the same agent are both live."""
    m = monitor(clock, metrics={"default_window_seconds": 300, "windows": [60]})
    m.record(ev(clock))
    clock.advance(100)
    m.record(ev(clock))
    assert m.get_metrics("a", window=60).event_count == 1
    assert m.get_metrics("a", window=300).event_count == 2
    assert m.get_metrics("a").window_seconds == 300
    m.close()


def test_ad_hoc_window_inside_the_kept_range(clock: ManualClock) -> None:
    """A window length that is not configured is summed from the kept per-second buckets."""
    m = monitor(clock)
    for _ in range(10):
        m.record(ev(clock))
        clock.advance(30)
    snap = m.get_metrics("a", window=120)
    assert (snap.window_seconds, snap.event_count) == (120, 3)  # t+210, t+240, t+270
    m.close()


def test_window_is_capped_at_max_window(clock: ManualClock) -> None:
    """A window longer than ``max_window_seconds`` is read as the maximum."""
    m = monitor(clock, metrics={"default_window_seconds": 60, "max_window_seconds": 120})
    assert m.get_metrics("a", window=10_000).window_seconds == 120
    m.close()


def test_late_events_inside_the_window_are_counted(clock: ManualClock) -> None:
    """An event that arrives late but is still inside the window is counted."""
    m = monitor(clock)
    m.record(ev(clock))
    m.record(ev(clock, timestamp=NOW - 100))
    assert m.get_metrics("a").event_count == 2
    assert m.stats()["late_events"] == 0
    m.close()


def test_events_older_than_every_window_are_stored_not_counted(clock: ManualClock) -> None:
    """An event older than the largest window is stored, not counted, and shows in stats."""
    m = monitor(clock)
    m.record(ev(clock))
    m.record(ev(clock, timestamp=NOW - 1000))
    assert m.get_metrics("a").event_count == 1
    assert m.stats()["late_events"] == 1
    assert len(m.get_events()) == 2
    m.close()


# --- what a snapshot holds --------------------------------------------------------------------


def test_seed_numbers_for_one_event(clock: ManualClock) -> None:
    """One $0.007 action in a 300 s window: 1 event, $0.0014/min, 0 % denials."""
    m = monitor(clock)
    m.record(ev(clock, cost_usd=0.007, latency_ms=350.0, data={"model": "gpt-4"}))
    snap = m.get_metrics("a")
    assert snap.event_count == 1
    assert snap.cost_per_minute == pytest.approx(0.007 / 5)
    assert snap.denial_rate == 0.0
    assert snap.avg_latency_ms == 350.0
    m.close()


def test_denial_rate_is_denials_over_actions_and_denials(clock: ManualClock) -> None:
    """``denial_rate`` = denials ÷ (actions + denials); other types are not in the denominator."""
    m = monitor(clock)
    for etype in ["action"] * 3 + ["denial"] + ["error", "llm_call", "guardrail_trigger"]:
        m.record(ev(clock, event_type=etype))
    snap = m.get_metrics("a")
    assert (snap.action_count, snap.denial_count, snap.denial_rate) == (3, 1, 0.25)
    m.close()


def test_cost_per_minute_divides_by_the_window_not_the_activity(clock: ManualClock) -> None:
    """Cost per minute is the window's cost over the window's minutes, however recent the spend."""
    m = monitor(clock, metrics={"default_window_seconds": 600})
    m.record(ev(clock, cost_usd=3.0))
    m.record(ev(clock, cost_usd=2.0))
    snap = m.get_metrics("a")
    assert snap.cost_total == 5.0
    assert snap.cost_per_minute == pytest.approx(0.5)
    assert snap.events_per_minute == pytest.approx(0.2)
    m.close()


def test_error_rate_is_errors_over_all_events(clock: ManualClock) -> None:
    """``error_rate`` = error events ÷ all events in the window."""
    m = monitor(clock)
    for etype in ["action", "action", "llm_call", "error"]:
        m.record(ev(clock, event_type=etype))
    snap = m.get_metrics("a")
    assert (snap.error_count, snap.error_rate) == (1, 0.25)
    m.close()


def test_approval_rate_counts_requests_and_responses(clock: ManualClock) -> None:
    """``approval_rate`` = approval requests and responses ÷ all events (the peer's rule)."""
    m = monitor(clock)
    for etype in ["approval_request", "approval_response", "action", "action"]:
        m.record(ev(clock, event_type=etype))
    snap = m.get_metrics("a")
    assert (snap.approval_count, snap.approval_rate) == (2, 0.5)
    m.close()


def test_tool_failure_rate_and_counts_by_tool(clock: ManualClock) -> None:
    """Tool calls whose status is not ok/success count as failures, per tool and overall."""
    m = monitor(clock)
    for status in ("ok", "success", None, "error"):
        m.record(ev(clock, event_type="tool_call", tool="search", status=status))
    m.record(ev(clock, event_type="tool_call", tool="fetch", status="timeout"))
    snap = m.get_metrics("a")
    assert (snap.tool_call_count, snap.tool_failure_count) == (5, 2)
    assert snap.tool_failure_rate == pytest.approx(0.4)
    assert snap.counts_by_tool == {"search": 4, "fetch": 1}
    m.close()


def test_tokens_and_cache_hit_rate(clock: ManualClock) -> None:
    """Token counters add up; ``cache_hit_rate`` = cached ÷ input tokens."""
    m = monitor(clock)
    m.record(ev(clock, event_type="llm_call", tokens_in=100, tokens_out=20, tokens_cached=30))
    m.record(ev(clock, event_type="llm_call", tokens_in=50))
    snap = m.get_metrics("a")
    assert (snap.tokens_in, snap.tokens_out, snap.tokens_cached) == (150, 20, 30)
    assert snap.cache_hit_rate == pytest.approx(0.2)
    assert snap.llm_call_count == 2
    m.close()


def test_counts_by_type_and_cost_by_model(clock: ManualClock) -> None:
    """A snapshot breaks events down by type and cost down by model."""
    m = monitor(clock)
    m.record(ev(clock, event_type="llm_call", model="gpt-4", cost_usd=0.5))
    m.record(ev(clock, event_type="llm_call", model="gpt-4", cost_usd=0.25))
    m.record(ev(clock, event_type="llm_call", model="mini", cost_usd=0.125))
    m.record(ev(clock, event_type="custom_step"))
    snap = m.get_metrics("a")
    assert snap.counts_by_type == {"llm_call": 3, "custom_step": 1}
    assert snap.cost_by_model == {"gpt-4": 0.75, "mini": 0.125}
    m.close()


def test_latency_quantiles_are_within_one_percent(clock: ManualClock) -> None:
    """p50, p95 and p99 latency are within 1 % (relative) of the exact values."""
    rng = random.Random(42)
    values = [rng.lognormvariate(5.0, 1.2) for _ in range(5000)]
    m = monitor(clock)
    for i, v in enumerate(values):
        m.record(ev(clock, timestamp=NOW - (i % 200), latency_ms=v))
    snap = m.get_metrics("a")
    ordered = sorted(values)
    for q, got in ((0.50, snap.p50_latency_ms), (0.95, snap.p95_latency_ms),
                   (0.99, snap.p99_latency_ms)):
        exact = ordered[int(q * (len(ordered) - 1))]
        assert abs(got - exact) / exact <= ACCURACY + 1e-9, (q, got, exact)
    assert snap.avg_latency_ms == pytest.approx(sum(values) / len(values))
    m.close()


def test_last_event_at_is_the_newest_timestamp(clock: ManualClock) -> None:
    """``last_event_at`` is the newest counted event's timestamp (``None`` when empty)."""
    m = monitor(clock)
    assert m.get_metrics("a").last_event_at is None
    m.record(ev(clock, timestamp=NOW - 5))
    m.record(ev(clock, timestamp=NOW - 2.5))
    assert m.get_metrics("a").last_event_at == NOW - 2.5
    m.close()


def test_unknown_agent_has_an_empty_snapshot(clock: ManualClock) -> None:
    """Asking about an agent never seen returns zeros, not an error."""
    m = monitor(clock)
    snap = m.get_metrics("ghost")
    assert (snap.agent, snap.event_count, snap.cost_per_minute) == ("ghost", 0, 0.0)
    m.close()


def test_snapshot_to_dict_has_every_field(clock: ManualClock) -> None:
    """``to_dict()`` gives every snapshot field for JSON and tables."""
    m = monitor(clock)
    d = m.get_metrics("a").to_dict()
    m.close()
    assert set(d) == set(MetricSnapshot.__struct_fields__)


# --- agents and the fleet ---------------------------------------------------------------------


def test_fleet_snapshot_sums_every_agent(clock: ManualClock) -> None:
    """``get_metrics(fleet=True)`` (or no agent) is one snapshot of all agents, named ``*``."""
    m = monitor(clock)
    m.record(ev(clock, agent="x", cost_usd=1.0))
    m.record(ev(clock, agent="y", cost_usd=2.0, event_type="denial"))
    fleet = m.get_metrics(fleet=True)
    assert (fleet.agent, fleet.event_count, fleet.cost_total, fleet.denial_rate) == (
        "*", 2, 3.0, 0.5,
    )
    assert m.get_metrics() == fleet
    m.close()


def test_get_all_metrics_has_one_snapshot_per_agent(clock: ManualClock) -> None:
    """``get_all_metrics()`` returns one snapshot per agent seen, sorted by name."""
    m = monitor(clock)
    for agent in ("zeta", "alpha", "mid"):
        m.record(ev(clock, agent=agent))
    assert [s.agent for s in m.get_all_metrics()] == ["alpha", "mid", "zeta"]
    assert m.agents() == ["alpha", "mid", "zeta"]
    m.close()


def test_reset_metrics_forgets_windows_but_not_events(clock: ManualClock) -> None:
    """``reset_metrics(agent)`` empties that agent's windows; stored events stay."""
    m = monitor(clock)
    m.record(ev(clock, agent="x"))
    m.record(ev(clock, agent="y"))
    m.reset_metrics("x")
    assert m.get_metrics("x").event_count == 0
    assert m.get_metrics("y").event_count == 1
    assert len(m.get_events()) == 2
    m.close()


def test_agents_beyond_the_limit_share_an_overflow_bucket(clock: ManualClock) -> None:
    """Past ``metrics.max_agents`` new agents are pooled, so memory stays bounded."""
    m = monitor(clock, metrics={"max_agents": 2})
    for agent in ("a1", "a2", "a3", "a4"):
        m.record(ev(clock, agent=agent))
    assert m.get_metrics("_overflow").event_count == 2
    assert m.stats()["agents"] == 3
    m.close()


def test_idle_agents_are_evicted_to_make_room(clock: ManualClock) -> None:
    """An agent idle for longer than the largest window gives its place to a new one."""
    m = monitor(clock, metrics={"max_agents": 1, "max_window_seconds": 300})
    m.record(ev(clock, agent="old"))
    clock.advance(400)
    m.record(ev(clock, agent="new"))
    assert m.agents() == ["new"]
    assert m.stats()["evicted_agents"] == 1
    m.close()


# --- AgentWindows directly --------------------------------------------------------------------


def test_windows_roll_once_per_second() -> None:
    """Events within one second share the open bucket; a new second closes it into the totals.

    The first event of a new second is folded straight into the totals (no one-event bucket to
    merge later); the second's further events share the open bucket again.
    """
    w = AgentWindows("a", (10,), start=100.0)
    w.observe(AgentEvent(timestamp=100.2, agent="a"))
    w.observe(AgentEvent(timestamp=100.7, agent="a"))
    assert (w.closed(10).count, w.cur.count) == (0, 2)
    w.observe(AgentEvent(timestamp=101.0, agent="a"))
    assert (w.closed(10).count, w.cur.count) == (3, 0)
    w.observe(AgentEvent(timestamp=101.5, agent="a"))
    assert (w.closed(10).count, w.cur.count) == (3, 1)
    w.roll(111)  # everything up to second 101 has left the 10 s window
    assert (w.closed(10).count, w.closed(10).types, w.closed(10).hist) == (0, {}, {})


def test_interval_hook_reports_each_closed_interval_and_the_gap() -> None:
    """The baseline hook gets each closed interval's totals and how many empty ones followed."""
    calls: list[tuple[int, int, int]] = []
    w = AgentWindows("a", (300,), start=120.0, interval=60,
                     hook=lambda _w, t, start, empties: calls.append((start, t.count, empties)))
    w.observe(AgentEvent(timestamp=125.0, agent="a"))
    w.observe(AgentEvent(timestamp=130.0, agent="a"))
    w.observe(AgentEvent(timestamp=185.0, agent="a"))
    w.observe(AgentEvent(timestamp=400.0, agent="a"))
    assert calls == [(120, 2, 0), (180, 1, 2)]  # 240-300 and 300-360 were empty


def test_expiry_drops_emptied_keys() -> None:
    """What leaves a window (a folded event, a frozen busy second) leaves no zero-count type,
    latency, tool or model keys behind in its total: memory stays bounded."""
    w = AgentWindows("a", (10,), start=100.0)
    for ts in (100.2, 100.5, 101.0):  # a busy second (frozen when it closes), then a folded one
        w.observe(AgentEvent(timestamp=ts, agent="a", event_type="rare_type", latency_ms=12.0,
                             tool="t", model="m", cost_usd=0.5, status="error"))
    w.roll(111)
    closed = w.closed(10)
    assert (closed.types, closed.hist, closed.tools, closed.models) == ({}, {}, {}, {})
    assert (closed.count, closed.cost, closed.tool_failures) == (0, 0.0, 0)


def test_metric_getters_agree_with_snapshots() -> None:
    """What a policy or rule reads for a metric equals the snapshot's field, for every metric."""
    w = AgentWindows("a", (60,), start=0.0)
    rng = random.Random(3)
    for i in range(200):
        w.observe(AgentEvent(
            timestamp=float(i // 4), agent="a",
            event_type=rng.choice(["action", "denial", "error", "llm_call", "tool_call"]),
            cost_usd=rng.random(), latency_ms=rng.uniform(1, 500), tokens_in=rng.randint(0, 50),
            tokens_out=3, tokens_cached=rng.randint(0, 5), tool=rng.choice([None, "t"]),
            status=rng.choice([None, "ok", "error"]),
        ))
    closed, cur = w.window(60, 50.0)
    snap = snapshot_of("a", 60, 50.0, closed, cur)
    for name in METRIC_NAMES:
        assert metric_getter(name)(closed, cur, 60) == pytest.approx(getattr(snap, name)), name


def test_unknown_metric_has_no_getter() -> None:
    """Asking for a metric that does not exist is a ``KeyError``, not a silent zero."""
    with pytest.raises(KeyError):
        metric_getter("no_such_metric")


def test_metric_names_include_the_peer_metrics() -> None:
    """Every metric the peer let a rule name is a Redline metric name too."""
    peer = {"event_count", "action_count", "denial_count", "denial_rate", "approval_count",
            "approval_rate", "error_count", "cost_total", "cost_per_minute", "avg_latency_ms"}
    assert peer <= METRIC_NAMES


# --- the sketch -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1e-6, 0.003, 1.0, 17.5, 350.0, 12_345.6, 86_400_000.0])
def test_sketch_buckets_are_within_accuracy(value: float) -> None:
    """Every value is represented within 1 % relative error by its bucket."""
    rep = value_of(bucket_of(value))
    assert abs(rep - value) / value <= ACCURACY + 1e-12


def test_sketch_zero_bucket() -> None:
    """Zero and sub-microsecond values share one bucket represented as 0."""
    assert value_of(bucket_of(0.0)) == 0.0
    assert bucket_of(0.0) == bucket_of(1e-9)


def test_quantile_of_nothing_is_zero() -> None:
    """An empty histogram has every quantile 0.0."""
    assert quantile({}, 0, 0.99) == 0.0


def test_quantile_of_one_value() -> None:
    """A single sample is every quantile (within accuracy)."""
    hist = {bucket_of(42.0): 1}
    for q in (0.0, 0.5, 1.0):
        assert math.isclose(quantile(hist, 1, q), 42.0, rel_tol=ACCURACY)


def test_ad_hoc_window_longer_than_every_configured_one_counts_to_the_minute() -> None:
    """A 1 h snapshot with only a 5 min window configured still sees the whole hour."""
    from redline import AgentEvent, Monitor
    from redline.testing import ManualClock

    clock = ManualClock(1_700_000_000.0)
    monitor = Monitor(clock=clock)
    for minute in range(40):
        clock.set(1_700_000_000.0 + minute * 60 + 5)
        monitor.record(AgentEvent(timestamp=clock.time(), agent="a", cost_usd=1.0))
    snap = monitor.get_metrics("a", window=3600)
    assert snap.window_seconds == 3600
    assert snap.event_count == 40
    assert snap.cost_per_minute == 40.0 / 60.0
    monitor.close()


def _brute_force(events: list[AgentEvent]) -> dict[str, Any]:
    """What a total over ``events`` must hold, computed the slow, obvious way."""
    out: dict[str, Any] = {"count": len(events), "types": {}, "hist": {}, "tools": {},
                           "models": {}, "cost": 0.0, "tok_in": 0, "tool_failures": 0}
    for e in events:
        out["types"][e.event_type] = out["types"].get(e.event_type, 0) + 1
        out["cost"] += e.cost_usd or 0.0
        out["tok_in"] += e.tokens_in or 0
        if e.latency_ms is not None:
            b = bucket_of(e.latency_ms)
            out["hist"][b] = out["hist"].get(b, 0) + 1
        if e.tool is not None or e.event_type == "tool_call":
            failed = e.status not in (None, "ok")
            row = out["tools"].setdefault(e.tool or "unknown", [0, 0])
            row[0] += 1
            row[1] += failed
            out["tool_failures"] += failed
        if e.model is not None:
            out["models"][e.model] = out["models"].get(e.model, 0) + 1
    return out


def _held(t: Totals) -> dict[str, Any]:
    return {"count": t.count, "types": t.types, "hist": t.hist, "cost": t.cost,
            "tools": {k: [int(r[0]), int(r[1])] for k, r in t.tools.items()},
            "models": {k: int(r[0]) for k, r in t.models.items()}, "tok_in": t.tok_in,
            "tool_failures": t.tool_failures}


@pytest.mark.parametrize("seed", range(6))
def test_window_totals_match_a_brute_force_count_at_any_rate(seed: int) -> None:
    """Sparse seconds (folded events) and busy ones (shared buckets) expire exactly.

    Rates change from one event every few seconds to many per second, with late events, so both
    kinds of window entry (a folded event, a frozen second) are created, merged and expired; at
    every step the totals of each window, of ad-hoc shorter and longer (per-minute) windows and
    of the lifetime equal a count over the raw events.
    """
    rng = random.Random(seed)
    w = AgentWindows("a", (10, 60), start=1000.0, span=600)
    t = 1000.0
    open_second = 1000
    # Each event with the second it is counted under: a late event counts in the open bucket.
    counted: list[tuple[AgentEvent, int]] = []
    for step in range(1500):
        t += rng.choice([0.0, 0.01, 0.3, 1.0, 2.5, 7.0]) if step % 200 < 100 else 0.05
        late = rng.random() < 0.05
        e = AgentEvent(
            timestamp=t - rng.uniform(0.0, 5.0) if late else t, agent="a",
            event_type=rng.choice(["action", "denial", "error", "llm_call", "tool_call"]),
            cost_usd=rng.choice([None, 0.25, 0.5]), latency_ms=rng.choice([None, 3.0, 120.0]),
            tokens_in=rng.choice([None, 7]), tool=rng.choice([None, "search", "pay"]),
            status=rng.choice([None, "ok", "error"]), model=rng.choice([None, "m1", "m2"]),
        )
        assert w.observe(e)
        open_second = max(open_second, int(e.timestamp))
        counted.append((e, open_second))
        if step % 7 == 0:
            now = t + rng.choice([0.0, 3.0, 30.0])
            second = int(now)
            for size in (10, 60):
                closed, cur = w.window(size, now)
                total = Totals()
                total.add(closed)
                total.add(cur)
                _assert_holds(total, [x for x, s in counted if s > second - size])
            _assert_holds(sum_recent(w, 30, now), [x for x, s in counted if s > second - 30])
            # Beyond the largest window, minute resolution: a minute counts if it started
            # inside the window (the current minute always does).
            _assert_holds(sum_recent(w, 300, now), [
                x for x, s in counted
                if s - s % 60 >= second - 300 or s - s % 60 == second - second % 60
            ])
            assert w.lifetime_totals().count == len(counted)
            t = max(t, now)
            open_second = max(open_second, second)


def _assert_holds(t: Totals, events: list[AgentEvent]) -> None:
    """``t`` holds exactly ``events``: counts by type, tool and model, latency buckets, sums."""
    types: dict[str, int] = {}
    hist: dict[int, int] = {}
    tools: dict[str, list[int]] = {}
    models: dict[str, int] = {}
    for e in events:
        types[e.event_type] = types.get(e.event_type, 0) + 1
        if e.latency_ms is not None:
            hist[bucket_of(e.latency_ms)] = hist.get(bucket_of(e.latency_ms), 0) + 1
        if e.tool is not None or e.event_type == "tool_call":
            row = tools.setdefault(e.tool or "unknown", [0, 0])
            row[0] += 1
            row[1] += e.status not in (None, "ok")
        if e.model is not None:
            models[e.model] = models.get(e.model, 0) + 1
    assert (t.count, t.types, t.hist, t.tok_in) == (
        len(events), types, hist, sum(e.tokens_in or 0 for e in events))
    assert {k: [int(r[0]), int(r[1])] for k, r in t.tools.items()} == tools
    assert {k: int(r[0]) for k, r in t.models.items()} == models
    assert t.tool_failures == sum(r[1] for r in tools.values())
    assert t.cost == pytest.approx(sum(e.cost_usd or 0.0 for e in events), abs=1e-9)


def test_derived_counters_follow_their_event_at_any_rate(clock: ManualClock) -> None:
    """A derived counter counts with its event whether the event opened a second or shared
    one, and leaves the window with it (one event every 7 s, then a burst in one second)."""
    m = monitor(clock, metrics={
        "default_window_seconds": 60,
        "counters": {"llm_5xx": {"event_type": "error", "where": "status >= 500"}},
    })
    for _ in range(5):
        clock.advance(7)
        m.record(ev(clock, event_type="error", data={"status": 503}))
    for _ in range(3):
        m.record(ev(clock, event_type="error", data={"status": 502}))
    m.record(ev(clock, event_type="error", data={"status": 404}))
    snap = m.get_metrics("a")
    assert (snap.counters, snap.counts_by_type) == ({"llm_5xx": 8}, {"error": 9})
    clock.advance(53)  # now 88 s in: the sparse events at 7..28 s have left the 60 s window
    snap = m.get_metrics("a")
    assert (snap.counters, snap.counts_by_type) == ({"llm_5xx": 4}, {"error": 5})
    clock.advance(60)
    assert m.get_metrics("a").counters == {}
    m.close()
