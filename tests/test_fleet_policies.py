"""Fleet policies: act on totals across every writer, evaluated by one elected monitor."""

from __future__ import annotations

import time
from typing import Any

import pytest

from conftest import PG_DSN
from redline import AgentEvent, ConfigError, Monitor, parse_config
from redline.testing import ManualClock

FLEET_POLICY = {
    "name": "fleet-budget",
    "metric": "cost_per_minute",
    "operator": ">",
    "threshold": 5.0,
    "action": "kill_global",
    "scope": "fleet",
}


def _config(**storage: Any) -> Any:
    raw: dict[str, Any] = {"kill_switch": {"policies": [FLEET_POLICY]}}
    if storage:
        raw["storage"] = storage
    return parse_config(raw)


def test_a_fleet_policy_kills_everyone_when_the_sum_crosses_the_line() -> None:
    """Three agents at $2/min each are under any per-agent line but $6/min as a fleet."""
    clock = ManualClock(1_700_000_000.0)
    with Monitor(_config(), clock=clock) as m:
        for agent in ("a", "b", "c"):
            m.record(AgentEvent(timestamp=clock.time(), agent=agent, cost_usd=10.0))
        assert not m.is_killed("a")
        fired = m.evaluate_fleet_policies()
        assert [(a.rule, a.agent, a.action) for a in fired] == [
            ("fleet-budget", "*", "kill_global")
        ]
        assert m.is_killed("a")
        assert m.is_killed("anyone-else")
        assert m.evaluate_fleet_policies() == []  # edge-triggered: one kill per breach


def test_fleet_policies_accept_only_fleet_metrics_and_actions() -> None:
    """``kill_agent`` or a quantile make no sense for the fleet: rejected at load."""
    with pytest.raises(ConfigError, match=r"policies\[0\].action"):
        parse_config({"kill_switch": {"policies": [{**FLEET_POLICY, "action": "kill_agent"}]}})
    with pytest.raises(ConfigError, match=r"policies\[0\].metric"):
        parse_config({"kill_switch": {"policies": [{**FLEET_POLICY, "metric": "p99_latency_ms"}]}})


def test_on_postgres_the_fleet_is_every_writer_and_one_monitor_leads(pg_schema: str) -> None:
    """Two writers' costs add up in the rollup; only the elected monitor acts, both obey."""
    storage = {"backend": "postgres", "dsn": PG_DSN, "schema": pg_schema}
    a = Monitor(_config(**storage))
    b = Monitor(_config(**storage))
    try:
        a.record(AgentEvent(agent="worker-a", cost_usd=20.0))
        b.record(AgentEvent(agent="worker-b", cost_usd=20.0))
        b.flush()
        snap = a.get_metrics(fleet=True)
        assert snap.event_count == 2
        assert snap.cost_total == pytest.approx(40.0)
        fired_a = a.evaluate_fleet_policies()
        fired_b = b.evaluate_fleet_policies()
        assert len(fired_a) + len(fired_b) == 1  # one leader acted
        for monitor in (a, b):
            # The follower adopts the kill through LISTEN/NOTIFY on its background thread:
            # the cross-process delay is what is waited for, bounded by a deadline.
            deadline = time.monotonic() + 5.0
            while not monitor.is_killed("worker-b") and time.monotonic() < deadline:
                time.sleep(0.01)
            assert monitor.is_killed("worker-b")
    finally:
        a.close()
        b.close()
