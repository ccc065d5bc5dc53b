"""Alert rules: thresholds over windows, for/cooldown, escalation, resolve, acknowledgement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redline import AgentEvent, ConfigError, Monitor, load_config, parse_config
from redline.alerts.manager import Alert
from redline.testing import ManualClock

NOW = 1_700_000_000.0
ROOT = Path(__file__).resolve().parent.parent


def rule(**over: Any) -> dict[str, Any]:
    base = {
        "name": "errors",
        "metric": "error_rate",
        "warning": 0.1,
        "critical": 0.5,
        "window_seconds": 60,
        "cooldown_seconds": 0,
    }
    return {**base, **over}


def monitor_with(clock: ManualClock, *rules: dict[str, Any], **extra: Any) -> Monitor:
    config = {"alerts": {"rules": list(rules)}, **extra}
    return Monitor(parse_config(config), clock=clock)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def seen(clock: ManualClock) -> list[Alert]:
    return []


@pytest.fixture
def m(clock: ManualClock, seen: list[Alert]) -> Iterator[Monitor]:
    monitor = monitor_with(clock, rule())
    monitor.on_alert(seen.append)
    yield monitor
    monitor.close()


def traffic(m: Monitor, clock: ManualClock, errors: int, ok: int, agent: str = "a") -> None:
    for _ in range(errors):
        m.record(AgentEvent(timestamp=clock.time(), agent=agent, event_type="error"))
    for _ in range(ok):
        m.record(AgentEvent(timestamp=clock.time(), agent=agent, event_type="action"))


def test_a_warning_fires_when_the_metric_crosses_its_threshold(
    m: Monitor, clock: ManualClock, seen: list[Alert]
) -> None:
    """Error rate 20 % over the window against warning 10 % raises one warning alert."""
    traffic(m, clock, errors=2, ok=8)
    fired = m.evaluate_alerts()
    assert [(a.severity, a.state, a.agent) for a in fired] == [("warning", "firing", "a")]
    assert fired[0].fingerprint == "rule:errors:a"
    assert seen == fired


def test_nothing_fires_below_the_thresholds(m: Monitor, clock: ManualClock) -> None:
    """A healthy agent raises nothing."""
    traffic(m, clock, errors=0, ok=10)
    assert m.evaluate_alerts() == []


def test_a_sustained_condition_is_one_alert_not_one_per_evaluation(
    m: Monitor, clock: ManualClock
) -> None:
    """While the level stays the same, later evaluations stay silent."""
    traffic(m, clock, errors=2, ok=8)
    assert len(m.evaluate_alerts()) == 1
    clock.advance(1)
    assert m.evaluate_alerts() == []


def test_crossing_into_critical_escalates_the_same_alert(m: Monitor, clock: ManualClock) -> None:
    """Warning then critical: the same alert id, re-sent with the new severity."""
    traffic(m, clock, errors=2, ok=8)
    first = m.evaluate_alerts()[0]
    traffic(m, clock, errors=20, ok=0)
    second = m.evaluate_alerts()[0]
    assert (second.id, second.severity) == (first.id, "critical")


def test_clearing_sends_a_resolve_with_the_same_fingerprint(m: Monitor, clock: ManualClock) -> None:
    """When errors leave the window the alert resolves: one notification, state resolved."""
    traffic(m, clock, errors=2, ok=8)
    fired = m.evaluate_alerts()[0]
    clock.advance(61)
    traffic(m, clock, errors=0, ok=10)
    resolved = m.evaluate_alerts()
    assert [(a.id, a.state, a.fingerprint) for a in resolved] == [
        (fired.id, "resolved", fired.fingerprint)
    ]
    assert m.active_alerts() == []


def test_for_seconds_waits_until_the_condition_has_held(clock: ManualClock) -> None:
    """With ``for_seconds: 30`` nothing fires at once, and it fires once 30 s have passed."""
    m = monitor_with(clock, rule(for_seconds=30, window_seconds=300))
    traffic(m, clock, errors=5, ok=5)
    assert m.evaluate_alerts() == []
    clock.advance(29)
    assert m.evaluate_alerts() == []
    clock.advance(1)
    assert len(m.evaluate_alerts()) == 1
    m.close()


def test_a_blip_shorter_than_for_seconds_never_fires(clock: ManualClock) -> None:
    """A condition that clears before ``for_seconds`` resets the wait."""
    m = monitor_with(clock, rule(for_seconds=30, window_seconds=10))
    traffic(m, clock, errors=5, ok=5)
    assert m.evaluate_alerts() == []
    clock.advance(11)
    traffic(m, clock, errors=0, ok=10)
    assert m.evaluate_alerts() == []
    clock.advance(30)
    traffic(m, clock, errors=0, ok=10)
    assert m.evaluate_alerts() == []
    m.close()


def test_cooldown_holds_back_a_refire_after_resolve(clock: ManualClock) -> None:
    """After a resolve, the same fingerprint stays quiet for ``cooldown_seconds``."""
    m = monitor_with(clock, rule(cooldown_seconds=120, window_seconds=10))
    traffic(m, clock, errors=5, ok=5)
    assert len(m.evaluate_alerts()) == 1
    clock.advance(11)
    traffic(m, clock, errors=0, ok=10)
    assert m.evaluate_alerts()[0].state == "resolved"
    traffic(m, clock, errors=10, ok=0)
    assert m.evaluate_alerts() == []
    clock.advance(120)
    traffic(m, clock, errors=10, ok=0)
    assert [a.state for a in m.evaluate_alerts()] == ["firing"]
    m.close()


def test_acknowledging_records_and_notifies_then_stays_quiet(
    m: Monitor, clock: ManualClock, seen: list[Alert]
) -> None:
    """``ack_alert`` moves the alert to acknowledged, stored as an ``alert`` event."""
    traffic(m, clock, errors=2, ok=8)
    fired = m.evaluate_alerts()[0]
    acked = m.ack_alert(fired.id, by="alice")
    assert acked is not None
    assert (acked.state, acked.details["acknowledged_by"]) == ("acknowledged", "alice")
    assert seen[-1].state == "acknowledged"
    states = [
        e["data"]["state"]
        for e in m.get_events(event_type="alert", order="asc")
        if e["data"].get("id") == fired.id
    ]
    assert states == ["firing", "acknowledged"]
    clock.advance(1)
    assert m.evaluate_alerts() == []


def test_acknowledging_an_unknown_alert_returns_none(m: Monitor) -> None:
    """There is nothing to acknowledge for an id no alert has."""
    assert m.ack_alert("al-nope", by="alice") is None


def test_an_acknowledged_alert_still_resolves(m: Monitor, clock: ManualClock) -> None:
    """Acknowledged is not resolved: clearing still sends the resolve."""
    traffic(m, clock, errors=2, ok=8)
    fired = m.evaluate_alerts()[0]
    m.ack_alert(fired.id, by="alice")
    clock.advance(61)
    traffic(m, clock, errors=0, ok=10)
    assert [a.state for a in m.evaluate_alerts()] == ["resolved"]


def test_the_message_template_uses_snapshot_fields(clock: ManualClock) -> None:
    """``{agent} errors at {error_rate:.0%}`` renders with the window's values."""
    m = monitor_with(clock, rule(message="{agent} errors at {error_rate:.0%} ({value:.2f})"))
    traffic(m, clock, errors=2, ok=8)
    assert m.evaluate_alerts()[0].message == "a errors at 20% (0.20)"
    m.close()


def test_wildcard_scope_only_watches_matching_agents(clock: ManualClock) -> None:
    """``agent: sales-*`` ignores other agents."""
    m = monitor_with(clock, rule(agent="sales-*"))
    traffic(m, clock, errors=5, ok=5, agent="support-1")
    traffic(m, clock, errors=5, ok=5, agent="sales-1")
    assert [a.agent for a in m.evaluate_alerts()] == ["sales-1"]
    m.close()


def test_fleet_scope_judges_all_agents_together(clock: ManualClock) -> None:
    """A fleet rule fires on the sum of agents, each of which alone is under the line."""
    m = monitor_with(
        clock,
        rule(
            name="fleet-cost", metric="cost_per_minute", warning=5.0, critical=None, scope="fleet"
        ),
    )
    for agent in ("a", "b", "c"):
        m.record(AgentEvent(timestamp=clock.time(), agent=agent, cost_usd=2.0))
    fired = m.evaluate_alerts()
    assert [(a.agent, a.severity) for a in fired] == [("*", "warning")]
    m.close()


def test_derived_counter_ratios_follow_seed_002(clock: ManualClock) -> None:
    """LLM 5xx ÷ LLM calls over 2 % fires; 4xx errors do not count as 5xx."""
    m = Monitor(
        parse_config(
            {
                "metrics": {
                    "counters": {"llm_5xx": {"event_type": "error", "where": "status >= 500"}}
                },
                "alerts": {
                    "rules": [
                        {"name": "llm-5xx", "metric": "llm_5xx / llm_call_count", "warning": 0.02}
                    ]
                },
            }
        ),
        clock=clock,
    )
    for _ in range(100):
        m.record(AgentEvent(timestamp=clock.time(), agent="a", event_type="llm_call"))
    m.record(
        AgentEvent(timestamp=clock.time(), agent="a", event_type="error", data={"status": 429})
    )
    m.record(
        AgentEvent(timestamp=clock.time(), agent="a", event_type="error", data={"status": 503})
    )
    assert m.get_metrics("a").counters == {"llm_5xx": 1}
    assert m.evaluate_alerts() == []
    for _ in range(2):
        m.record(
            AgentEvent(timestamp=clock.time(), agent="a", event_type="error", data={"status": 502})
        )
    assert [round(a.details["value"], 2) for a in m.evaluate_alerts()] == [0.03]
    m.close()


def test_rules_route_to_the_channels_they_name(tmp_path: Path, clock: ManualClock) -> None:
    """A rule naming a channel reaches it even below that channel's ``min_severity``."""
    loud, quiet = tmp_path / "loud.jsonl", tmp_path / "quiet.jsonl"
    m = Monitor(
        parse_config(
            {
                "alerts": {
                    "channels": [
                        {
                            "type": "jsonl",
                            "name": "loud",
                            "path": str(loud),
                            "min_severity": "critical",
                        },
                        {
                            "type": "jsonl",
                            "name": "quiet",
                            "path": str(quiet),
                            "min_severity": "critical",
                        },
                    ],
                    "rules": [rule(critical=None, channels=["loud"])],
                }
            }
        ),
        clock=clock,
    )
    traffic(m, clock, errors=2, ok=8)
    m.evaluate_alerts()
    m.close()
    assert loud.exists()
    assert not quiet.exists()


def test_an_acknowledgement_from_another_process_is_adopted(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The CLI (another monitor on the same store) acknowledges; the running monitor adopts it."""
    config = {"storage": {"path": str(tmp_path / "e.db")}, "alerts": {"rules": [rule()]}}
    running = Monitor(parse_config(config), clock=clock)
    traffic(running, clock, errors=2, ok=8)
    fired = running.evaluate_alerts()[0]
    running.flush()
    other = Monitor(parse_config(config), clock=clock)
    assert other.ack_alert(fired.id, by="bob") is not None
    other.close()
    running._poll_acks()
    assert [a.state for a in running.active_alerts()] == ["acknowledged"]
    running.close()


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"metric": "eror_rate"}, "alerts.rules[0].metric: unknown metric or counter 'eror_rate'"),
        ({"warning": None, "critical": None}, "needs a warning or a critical threshold"),
        ({"channels": ["nowhere"]}, "alerts.rules[0].channels[0]: no channel named 'nowhere'"),
        ({"operator": "=>"}, "alerts.rules[0].operator"),
        ({"message": "{unclosed"}, "alerts.rules[0].message: invalid template"),
    ],
)
def test_bad_rules_are_config_errors(override: dict[str, Any], needle: str) -> None:
    """A rule that cannot work is rejected at load, naming the key."""
    with pytest.raises(ConfigError) as info:
        parse_config({"alerts": {"rules": [rule(**override)]}})
    assert needle in str(info.value)


def test_the_runtime_alerts_example_config_loads() -> None:
    """``examples/runtime-alerts.yaml`` ships a runtime's recommended thresholds as valid rules."""
    config = load_config(ROOT / "examples" / "runtime-alerts.yaml")
    assert {r.name for r in config.alerts.rules} == {
        "tool-failure-rate",
        "llm-5xx-rate",
        "max-iterations-rate",
        "cache-hit-rate",
        "confirm-timeout-rate",
    }
