"""Specification of the detectors: z-score rules, loops, stuck agents, suspicious actions, drift."""

from __future__ import annotations

from typing import Any

import pytest

from redline import AgentEvent, Anomaly, Monitor, parse_config
from redline.config import LoopConfig
from redline.detect.drift import total_variation
from redline.detect.patterns import LoopDetector, action_name
from redline.testing import ManualClock

NOW = 1_700_000_040.0  # 2023-11-14 22:14:00 UTC, a whole minute
QUIET: dict[str, Any] = {  # every pattern detector off, so each test sees only its own
    "loop": {"enabled": False},
    "stuck": {"enabled": False},
    "suspicious": {"enabled": False},
    "drift": {"enabled": False},
}


class Harness:
    """A monitor on a manual clock that keeps every anomaly it raises."""

    def __init__(self, **config: Any) -> None:
        config.setdefault("detectors", QUIET)
        self.clock = ManualClock(NOW)
        self.monitor = Monitor(parse_config(config), clock=self.clock)
        self.anomalies: list[Anomaly] = []
        self.monitor.on_anomaly(self.anomalies.append)

    def minute(self, count: int, agent: str = "a", **fields: Any) -> None:
        """``count`` events spread over the next minute; the clock ends one minute later."""
        start = self.clock.time()
        for i in range(count):
            self.monitor.record(
                AgentEvent(timestamp=start + i * 60.0 / max(count, 1), agent=agent, **fields)
            )
        self.clock.set(start + 60)

    def close_interval(self, agent: str = "a") -> None:
        """Read the agent's metrics, which closes any interval that has ended, then run the
        duties, which act on what the closed interval raised (a read never acts itself)."""
        self.monitor.get_metrics(agent)
        self.monitor.run_duties()

    def record(self, **fields: Any) -> None:
        fields.setdefault("agent", "a")
        fields.setdefault("timestamp", self.clock.time())
        self.monitor.record(AgentEvent(**fields))

    def kinds(self) -> list[str]:
        return [a.kind for a in self.anomalies]

    def close(self) -> None:
        self.monitor.close()


def zscore(**rule: Any) -> dict[str, Any]:
    """A config with one z-score rule on ``event_count`` over one-minute intervals."""
    base = {"name": "flood", "metric": "event_count", "z_threshold": 3.0,
            "cooldown_seconds": 300}
    return {
        "baselines": {"interval_seconds": 60, "min_samples": 5, "metrics": []},
        "anomaly_detection": {"rules": [{**base, **rule}]},
    }


# --- z-score rules --------------------------------------------------------------------------


def test_outlier_interval_fires() -> None:
    """An interval far above the learned baseline raises a z-score anomaly with its numbers."""
    h = Harness(**zscore())
    for n in (10, 12, 10, 12, 10, 11, 12, 10):
        h.minute(n)
    h.minute(100)
    h.close_interval()
    (anomaly,) = h.anomalies
    assert (anomaly.kind, anomaly.rule, anomaly.metric, anomaly.value) == (
        "zscore", "flood", "event_count", 100,
    )
    assert anomaly.z_score is not None
    assert anomaly.z_score > 3
    h.close()


def test_normal_intervals_do_not_fire() -> None:
    """Ordinary variation inside the threshold raises nothing."""
    h = Harness(**zscore())
    for n in (10, 12, 10, 12, 10, 11, 12, 10, 11, 12):
        h.minute(n)
    h.close_interval()
    assert h.anomalies == []
    h.close()


def test_outlier_is_scored_before_it_is_learned() -> None:
    """The first outlier interval fires: it is scored against a baseline that excludes it."""
    h = Harness(**zscore())
    for n in (10, 12, 10, 12, 10):  # mean 10.8, sd 1.1: 16 is z≈4.7 (only ≈1.9 if included)
        h.minute(n)
    h.minute(16)
    h.close_interval()
    assert [a.value for a in h.anomalies] == [16]
    h.close()


def test_flat_baseline_fires_on_the_first_change() -> None:
    """A metric that never varied fires on its first different interval."""
    h = Harness(**zscore())
    for _ in range(6):
        h.minute(10)
    h.minute(11)
    h.close_interval()
    assert [a.value for a in h.anomalies] == [11]
    h.close()


def test_nothing_fires_before_min_samples() -> None:
    """Until ``min_samples`` intervals are learned, no outlier can fire."""
    h = Harness(**zscore())
    for n in (10, 12, 10):
        h.minute(n)
    h.minute(500)
    h.close_interval()
    assert h.anomalies == []
    h.close()


def test_rule_min_samples_overrides_the_baseline_setting() -> None:
    """A rule's own ``min_samples`` replaces ``baselines.min_samples`` for that rule."""
    h = Harness(**zscore(min_samples=3))
    for n in (10, 12, 10):
        h.minute(n)
    h.minute(500)
    h.close_interval()
    assert len(h.anomalies) == 1
    h.close()


def test_cooldown_silences_repeats_then_lets_them_through() -> None:
    """After firing, a rule stays quiet for ``cooldown_seconds``, then fires again."""
    h = Harness(**zscore(cooldown_seconds=300))
    for n in (10, 12, 10, 12, 10, 11):
        h.minute(n)
    h.minute(100)  # fires when this interval closes
    h.minute(100)  # within the cooldown
    h.close_interval()
    assert len(h.anomalies) == 1
    for _ in range(4):
        h.minute(11)
    h.minute(1000)  # five minutes after the first firing
    h.close_interval()
    assert len(h.anomalies) == 2
    h.close()


def test_wildcard_agent_patterns_pick_the_agents() -> None:
    """``agent: "sales-*"`` applies the rule to sales agents only."""
    h = Harness(**zscore(agent="sales-*"))
    for n in (10, 12, 10, 12, 10, 11):
        h.minute(n, agent="sales-eu")
        h.clock.set(h.clock.time() - 60)
        h.minute(n, agent="ops-1")
    h.minute(100, agent="sales-eu")
    h.clock.set(h.clock.time() - 60)
    h.minute(100, agent="ops-1")
    h.close_interval("sales-eu")
    h.close_interval("ops-1")
    assert [a.agent for a in h.anomalies] == ["sales-eu"]
    h.close()


def test_direction_up_ignores_drops() -> None:
    """``direction: up`` fires on rises only; a sudden drop is not an anomaly for it."""
    h = Harness(**zscore(direction="up"))
    for n in (50, 52, 50, 52, 50, 51):
        h.minute(n)
    h.minute(1)
    h.close_interval()
    assert h.anomalies == []
    h.close()


def test_direction_both_catches_drops() -> None:
    """By default a drop as large as a spike fires too."""
    h = Harness(**zscore())
    for n in (50, 52, 50, 52, 50, 51):
        h.minute(n)
    h.minute(1)
    h.close_interval()
    assert [a.value for a in h.anomalies] == [1]
    h.close()


def test_per_event_rule_fires_on_the_event_itself() -> None:
    """A ``per: event`` latency rule scores each event's own latency and fires on that event."""
    h = Harness(
        baselines={"min_samples": 10, "metrics": []},
        anomaly_detection={"rules": [{"name": "slow", "metric": "latency_ms", "per": "event",
                                      "z_threshold": 4}]},
    )
    for i in range(30):
        h.record(latency_ms=100.0 + (i % 5))
    assert h.anomalies == []
    h.record(latency_ms=5000.0, session_id="s-9")
    (anomaly,) = h.anomalies
    assert (anomaly.metric, anomaly.value, anomaly.session_id) == ("latency_ms", 5000.0, "s-9")
    h.close()


def test_condition_limits_when_a_rule_fires() -> None:
    """A rule's ``condition`` (here: business hours, UTC) must hold for it to fire."""
    def run(condition: str) -> int:
        h = Harness(**zscore(condition=condition))
        for n in (10, 12, 10, 12, 10, 11):
            h.minute(n)
        h.minute(100)
        h.close_interval()
        h.close()
        return len(h.anomalies)

    assert run("hour >= 9 and hour < 17") == 0  # the clock reads 22:2x UTC
    assert run("hour >= 22") == 1


def test_condition_reads_value_agent_and_variables() -> None:
    """Conditions see the scored ``value``, the ``agent`` and ``$variables`` from the config."""
    def run(condition: str, variables: dict[str, Any]) -> int:
        h = Harness(variables=variables, **zscore(condition=condition))
        for n in (10, 12, 10, 12, 10, 11):
            h.minute(n)
        h.minute(100)
        h.close_interval()
        h.close()
        return len(h.anomalies)

    assert run("value > $floor and agent == 'a'", {"floor": 50}) == 1
    assert run("value > $floor", {"floor": 500}) == 0


def test_zscore_rule_can_kill() -> None:
    """A rule with ``action: kill_agent`` stops the agent when it fires."""
    h = Harness(**zscore(action="kill_agent"))
    for n in (10, 12, 10, 12, 10, 11):
        h.minute(n)
    h.minute(100)
    h.close_interval()
    assert h.monitor.is_killed("a")
    assert h.monitor.kills()[0].actor == "zscore:flood"
    h.close()


def test_anomalies_are_recorded_alerted_and_counted() -> None:
    """Each anomaly is stored as an ``anomaly`` event, raises an alert and shows in stats."""
    h = Harness(**zscore())
    alerts: list[Any] = []
    h.monitor.on_alert(alerts.append)
    for n in (10, 12, 10, 12, 10, 11):
        h.minute(n)
    h.minute(100)
    h.close_interval()
    (stored,) = h.monitor.get_events(event_type="anomaly")
    assert stored["data"]["rule"] == "flood"
    assert [a.kind for a in alerts] == ["zscore"]
    assert h.monitor.stats()["anomalies"] == 1
    h.close()


def test_anomalies_do_not_feed_the_metrics() -> None:
    """The monitor's own anomaly and alert events are not counted as agent activity."""
    h = Harness(**zscore())
    for n in (10, 12, 10, 12, 10, 11):
        h.minute(n)
    h.minute(100)
    h.close_interval()
    assert h.anomalies
    assert set(h.monitor.get_metrics("a").counts_by_type) == {"action"}
    h.close()


# --- loops ----------------------------------------------------------------------------------


def loops(**loop: Any) -> dict[str, Any]:
    return {"detectors": {**QUIET, "loop": {"repeats": 3, "window_seconds": 60, **loop}}}


def test_same_tool_same_arguments_is_a_loop() -> None:
    """The same tool called with the same arguments ``repeats`` times in the window is a loop."""
    h = Harness(**loops())
    for _ in range(3):
        h.record(event_type="tool_call", tool="search", data={"args": {"q": "weather"}})
        h.clock.advance(5)
    (anomaly,) = h.anomalies
    assert (anomaly.kind, anomaly.details["tool"], anomaly.recommended_action) == (
        "loop", "search", "inject_guidance",
    )
    h.close()


def test_different_arguments_are_not_a_loop() -> None:
    """Calling one tool with different arguments is progress, not a loop."""
    h = Harness(**loops())
    for q in ("a", "b", "c", "d"):
        h.record(event_type="tool_call", tool="search", data={"args": {"q": q}})
    assert h.anomalies == []
    h.close()


def test_repeats_spread_beyond_the_window_are_not_a_loop() -> None:
    """The repeats must fall inside ``window_seconds``."""
    h = Harness(**loops())
    for _ in range(4):
        h.record(event_type="tool_call", tool="search", data={"args": "same"})
        h.clock.advance(40)
    assert h.anomalies == []
    h.close()


def test_loop_cooldown() -> None:
    """A loop that keeps going is reported once per cooldown, not on every repeat."""
    h = Harness(**loops(cooldown_seconds=60))
    for _ in range(9):
        h.record(event_type="tool_call", tool="search", data={"args": "same"})
        h.clock.advance(1)
    assert h.kinds() == ["loop"]
    h.clock.advance(60)
    for _ in range(3):
        h.record(event_type="tool_call", tool="search", data={"args": "same"})
    assert h.kinds() == ["loop", "loop"]
    h.close()


def test_loop_memory_is_bounded_without_forgetting_a_loop_in_progress() -> None:
    """Thousands of distinct calls keep at most two generations of 128 per agent (the rest is
    counted as evicted), and a loop whose repeats are 100 distinct calls apart is still caught.
    """
    clock = ManualClock(1_000.0)
    detector = LoopDetector(LoopConfig(repeats=3), clock.time)
    fired = []
    for i in range(5_000):
        args = "same" if i % 100 == 0 else f"q-{i}"
        anomaly = detector.observe(AgentEvent(agent="a", timestamp=clock.time(), tool="t",
                                              event_type="tool_call", data={"args": args}), "t")
        fired += [anomaly] if anomaly is not None else []
        clock.advance(0.01)
    current, previous = detector._seen["a"]
    assert len(current) <= 128
    assert len(previous) <= 128
    assert detector.evicted >= 5_000 - 256 - 50
    assert fired
    assert all(a.details["tool"] == "t" for a in fired)


def test_loop_can_kill_the_session() -> None:
    """``action: kill_session`` on the loop detector stops the looping session only."""
    h = Harness(**loops(action="kill_session"))
    for _ in range(3):
        h.record(event_type="tool_call", tool="search", session_id="s-1", data={"args": 1})
    assert h.monitor.is_killed("a", session_id="s-1")
    assert not h.monitor.is_killed("a", session_id="s-2")
    h.close()


# --- stuck ------------------------------------------------------------------------------------


def stuck(**cfg: Any) -> dict[str, Any]:
    return {"detectors": {**QUIET, "stuck": {"repeats": 4, **cfg}}}


def test_same_action_in_a_row_is_stuck() -> None:
    """The same action ``repeats`` times in a row, whatever its arguments, is a stuck agent."""
    h = Harness(**stuck())
    for i in range(4):
        h.record(event_type="action", data={"action": "retry_login", "attempt": i})
    (anomaly,) = h.anomalies
    assert (anomaly.kind, anomaly.details["action"]) == ("stuck", "retry_login")
    h.close()


def test_any_other_action_resets_the_run() -> None:
    """A different action in between means the agent is making progress."""
    h = Harness(**stuck())
    for name in ("a", "a", "a", "b", "a", "a", "a"):
        h.record(event_type="action", data={"action": name})
    assert h.anomalies == []
    h.close()


def test_events_without_an_action_are_ignored_by_pattern_detectors() -> None:
    """Chat, cost and LLM events name no action, so they neither extend nor break a run."""
    assert action_name(AgentEvent(agent="a", event_type="llm_call")) is None
    assert action_name(AgentEvent(agent="a", event_type="action", data={"name": "x"})) == "x"
    assert action_name(AgentEvent(agent="a", event_type="cost", tool="t")) == "t"


# --- suspicious actions -----------------------------------------------------------------------


def suspicious(**cfg: Any) -> dict[str, Any]:
    return {"detectors": {**QUIET, "suspicious": cfg}}


@pytest.mark.parametrize("tool", ["delete_records", "DropTable", "send_email", "wire_transfer"])
def test_risky_actions_are_suspicious(tool: str) -> None:
    """An action whose name contains a risky word asks for approval."""
    h = Harness(**suspicious())
    h.record(event_type="tool_call", tool=tool)
    (anomaly,) = h.anomalies
    assert (anomaly.kind, anomaly.recommended_action) == ("suspicious", "require_approval")
    h.close()


def test_ordinary_actions_are_not_suspicious() -> None:
    """Everyday tools raise nothing."""
    h = Harness(**suspicious())
    for tool in ("search", "read_file", "summarise"):
        h.record(event_type="tool_call", tool=tool)
    assert h.anomalies == []
    h.close()


def test_suspicious_patterns_are_configurable() -> None:
    """``detectors.suspicious.patterns`` replaces the risky words."""
    h = Harness(**suspicious(patterns=["refund"]))
    h.record(event_type="tool_call", tool="issue_refund")
    h.record(event_type="tool_call", tool="delete_records")
    assert [a.details["action"] for a in h.anomalies] == ["issue_refund"]
    h.close()


# --- drift ------------------------------------------------------------------------------------


def drift(**cfg: Any) -> dict[str, Any]:
    settings = {"min_intervals": 3, "min_events": 5, "threshold": 0.5, **cfg}
    return {"baselines": {"interval_seconds": 60, "metrics": []},
            "detectors": {**QUIET, "drift": settings}}


def test_a_new_mix_of_event_types_is_drift() -> None:
    """An agent that suddenly does different things than its learned profile has drifted."""
    h = Harness(**drift())
    for _ in range(5):
        h.minute(10, event_type="llm_call")
    h.minute(10, event_type="error")
    h.close_interval()
    (anomaly,) = h.anomalies
    assert (anomaly.kind, anomaly.metric, anomaly.value) == (
        "drift", "event_type_distribution", 1.0,
    )
    h.close()


def test_a_steady_mix_is_not_drift() -> None:
    """The same mix interval after interval raises nothing."""
    h = Harness(**drift())
    for _ in range(8):
        h.minute(6, event_type="llm_call")
        h.clock.set(h.clock.time() - 30)
        h.minute(4, event_type="tool_call")
        h.clock.set(h.clock.time() - 30)
    h.close_interval()
    assert h.anomalies == []
    h.close()


def test_drift_waits_for_a_profile() -> None:
    """Nothing is drift until ``min_intervals`` busy intervals are learned."""
    h = Harness(**drift())
    h.minute(10, event_type="llm_call")
    h.minute(10, event_type="error")
    h.close_interval()
    assert h.anomalies == []
    h.close()


def test_sparse_intervals_are_not_judged() -> None:
    """Intervals with fewer than ``min_events`` events are too small to call drift."""
    h = Harness(**drift())
    for _ in range(5):
        h.minute(10, event_type="llm_call")
    h.minute(2, event_type="error")
    h.close_interval()
    assert h.anomalies == []
    h.close()


def test_total_variation_distance() -> None:
    """Drift is measured as total variation: 0 for the same mix, 1 for disjoint ones."""
    assert total_variation({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0
    assert total_variation({"a": 1.0}, {"b": 1.0}) == 1.0
    assert total_variation({"a": 0.75, "b": 0.25}, {"a": 0.25, "b": 0.75}) == 0.5


def test_the_detector_registry_builds_what_the_config_enables() -> None:
    """Each registered detector has its config section, satisfies its protocol, and is built
    only when enabled (the per-event loop then runs over exactly those)."""
    from redline.config.schema import DetectorsConfig
    from redline.detect.registry import (
        DETECTORS,
        ActionDetector,
        IntervalDetector,
        build_detectors,
    )

    fields = set(DetectorsConfig.__struct_fields__)
    assert {f for f, _, _ in DETECTORS} == fields  # one registry line per config section
    actions, intervals = build_detectors(DetectorsConfig(), lambda: 0.0)
    assert all(isinstance(d, ActionDetector) for d in actions)
    assert all(isinstance(d, IntervalDetector) for d in intervals)
    assert [type(d).__name__ for d in actions] == [
        "SuspiciousDetector",
        "LoopDetector",
        "StuckDetector",
    ]
    config = parse_config({"detectors": {"loop": {"enabled": False}, "drift": {"enabled": False}}})
    actions, intervals = build_detectors(config.detectors, lambda: 0.0)
    assert [type(d).__name__ for d in actions] == ["SuspiciousDetector", "StuckDetector"]
    assert intervals == ()
