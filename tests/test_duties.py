"""One place acts per thread role: the recording thread (in memory) and the duties (interval work).

Reads (``get_metrics()``, a Prometheus scrape) never trip a kill nor fire an alert: what a read's
window roll raises is handed to the duties, which ``run_duties()`` runs on a manual clock.
"""

from __future__ import annotations

from typing import Any

import pytest

from redline import AgentEvent, Monitor, parse_config
from redline.detect.anomaly import Anomaly
from redline.testing import ManualClock

NOW = 1_700_000_040.0


def _flood_monitor(action: str) -> tuple[Monitor, ManualClock, list[Anomaly]]:
    """A z-score rule on per-minute event counts, which fires when an interval closes."""
    clock = ManualClock(NOW)
    rule = {"name": "flood", "metric": "event_count", "z_threshold": 3.0,
            "cooldown_seconds": 300, "action": action}
    config = parse_config({
        "baselines": {"interval_seconds": 60, "min_samples": 5, "metrics": []},
        "anomaly_detection": {"rules": [rule]},
        "detectors": {"loop": {"enabled": False}, "stuck": {"enabled": False},
                      "drift": {"enabled": False}},
    })
    m = Monitor(config, clock=clock)
    seen: list[Anomaly] = []
    m.on_anomaly(seen.append)
    for minute in range(8):
        count = 200 if minute == 7 else 5 + minute % 2
        start = clock.time()
        for i in range(count):
            m.record(AgentEvent(timestamp=start + i * 60.0 / count, agent="a"))
        clock.set(start + 60)
        if minute < 7:
            m.get_metrics("a")
            m.run_duties()
    return m, clock, seen


@pytest.mark.parametrize("reader", ["get_metrics", "scrape"])
def test_reads_never_kill_or_alert(reader: str) -> None:
    """The read that closes an outlier interval does not kill; the duties that follow do."""
    m, _clock, seen = _flood_monitor("kill_agent")
    try:
        before = m.stats()["kills"], len(seen)
        if reader == "get_metrics":
            m.get_metrics("a")
        else:
            pytest.importorskip("prometheus_client")
            from prometheus_client import CollectorRegistry, generate_latest

            from redline.export.prometheus import RedlineCollector

            registry = CollectorRegistry()
            registry.register(RedlineCollector(m))
            generate_latest(registry)
        assert not m.is_killed("a"), f"a {reader} read killed the agent"
        assert (m.stats()["kills"], len(seen)) == before
        m.run_duties()
        assert [a.rule for a in seen][-1:] == ["flood"]
        assert m.is_killed("a")
    finally:
        m.close()


def _fleet(ttl: Any) -> Monitor:
    policy = {"name": "fleet-any", "scope": "fleet", "metric": "event_count", "operator": ">",
              "threshold": 0, "action": "kill_global", "ttl_seconds": ttl}
    return Monitor(parse_config({"kill_switch": {"policies": [policy]}}), clock=ManualClock(NOW))


def test_a_fleet_policy_kill_carries_its_ttl_and_expires() -> None:
    """``ttl_seconds`` on a fleet policy gives its global kill an expiry, which the duties honour."""
    m = _fleet(60)
    clock = m.clock
    assert isinstance(clock, ManualClock)
    try:
        m.record(AgentEvent(timestamp=NOW, agent="a"))
        m.evaluate_fleet_policies()
        kill = m.kill_for("a", None)
        assert kill is not None
        assert kill.scope == "global"
        assert kill.expires_at == pytest.approx(NOW + 60)
        clock.set(NOW + 61)
        m.run_duties()
        assert not m.is_killed("a")
    finally:
        m.close()
