"""Specification of kill switches: scopes, TTLs, ``check()``, ``guard()`` and automatic policies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from redline import AgentEvent, AgentKilledError, Monitor, parse_config
from redline.control.killswitch import KillSwitch
from redline.exceptions import StoreError
from redline.store.base import KillRecord
from redline.store.memory import MemoryStore
from redline.store.sqlite import SQLiteStore
from redline.testing import ManualClock, RecordingSubscriber

NOW = 1_700_000_040.0
COST_POLICY = {"name": "auto-kill-on-high-cost", "metric": "cost_per_minute", "operator": ">",
               "threshold": 5.0, "action": "kill_agent", "severity": "critical"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def monitor(clock: ManualClock) -> Iterator[Monitor]:
    m = Monitor(clock=clock)
    yield m
    m.close()


def with_policies(clock: ManualClock, *policies: dict[str, Any], **kill_switch: Any) -> Monitor:
    return Monitor(
        parse_config({"kill_switch": {"policies": list(policies), **kill_switch}}), clock=clock
    )


def spend(m: Monitor, clock: ManualClock, cost: float, agent: str = "a", **fields: Any) -> None:
    m.record(AgentEvent(timestamp=clock.time(), agent=agent, cost_usd=cost, **fields))


# --- scopes ---------------------------------------------------------------------------------


def test_killing_an_agent_stops_all_its_sessions(monitor: Monitor) -> None:
    """An agent kill covers the agent in every session, and no other agent."""
    monitor.kill_agent("a", reason="cost spike")
    assert monitor.is_killed("a")
    assert monitor.is_killed("a", session_id="any")
    assert not monitor.is_killed("b")


def test_killing_a_session_stops_only_that_session(monitor: Monitor) -> None:
    """A session kill covers that session of any agent, and nothing else."""
    monitor.kill_session("s-1", reason="prompt injection")
    assert monitor.is_killed("a", session_id="s-1")
    assert monitor.is_killed("b", session_id="s-1")
    assert not monitor.is_killed("a", session_id="s-2")
    assert not monitor.is_killed("a")


def test_global_kill_stops_everyone(monitor: Monitor) -> None:
    """A global kill covers every agent and session."""
    monitor.kill_global(reason="incident")
    assert monitor.is_killed("anyone")
    assert monitor.is_killed("anyone", session_id="s")


def test_check_raises_with_scope_target_reason_and_actor(monitor: Monitor) -> None:
    """``check()`` raises ``AgentKilledError`` carrying what was killed, why and by whom."""
    monitor.kill_agent("a", reason="Cost spike detected", actor="oncall")
    with pytest.raises(AgentKilledError) as info:
        monitor.check(agent="a", session_id="s-1")
    err = info.value
    assert (err.scope, err.target, err.reason, err.actor) == (
        "agent", "a", "Cost spike detected", "oncall",
    )
    assert str(err) == "agent 'a' killed: Cost spike detected"


def test_check_passes_when_nothing_covers_the_caller(monitor: Monitor) -> None:
    """``check()`` returns quietly for an agent and session no kill covers."""
    monitor.kill_agent("other")
    monitor.kill_session("s-other")
    monitor.check(agent="a", session_id="s-1")


def test_the_widest_kill_is_reported(monitor: Monitor) -> None:
    """When several kills cover a caller, ``check()`` reports global before agent before session."""
    monitor.kill_session("s-1", reason="session")
    with pytest.raises(AgentKilledError, match="session"):
        monitor.check("a", "s-1")
    monitor.kill_agent("a", reason="agent")
    with pytest.raises(AgentKilledError) as info:
        monitor.check("a", "s-1")
    assert info.value.scope == "agent"
    monitor.kill_global(reason="fleet")
    with pytest.raises(AgentKilledError) as info:
        monitor.check("a", "s-1")
    assert (info.value.scope, info.value.target, str(info.value)) == (
        "global", "*", "all agents killed: fleet",
    )


def test_a_new_kill_replaces_the_old_one(monitor: Monitor) -> None:
    """Killing an already killed agent updates the reason; there is still one record."""
    monitor.kill_agent("a", reason="first")
    monitor.kill_agent("a", reason="second")
    assert [k.reason for k in monitor.kills()] == ["second"]


def test_kill_switch_rejects_unknown_scopes(clock: ManualClock) -> None:
    """A scope other than global, agent or session is a programming error."""
    ks = KillSwitch(clock.time)
    with pytest.raises(ValueError, match="scope"):
        ks.kill("tenant", "acme")
    with pytest.raises(ValueError, match="target"):
        ks.kill("agent", "")


# --- revive ---------------------------------------------------------------------------------


def test_revive_lifts_an_agent_kill(monitor: Monitor) -> None:
    """``revive(agent=...)`` lets the agent run again and says it lifted something."""
    monitor.kill_agent("a")
    assert monitor.revive(agent="a") is True
    monitor.check("a")
    assert monitor.kills() == []


def test_revive_lifts_a_session_kill(monitor: Monitor) -> None:
    """``revive(session_id=...)`` lifts a session kill."""
    monitor.kill_session("s-1")
    assert monitor.revive(session_id="s-1") is True
    assert not monitor.is_killed("a", session_id="s-1")


def test_revive_global(monitor: Monitor) -> None:
    """``revive_global()`` lifts the fleet-wide kill."""
    monitor.kill_global()
    assert monitor.revive_global() is True
    assert not monitor.is_killed("a")


def test_reviving_what_is_not_killed_says_so(monitor: Monitor) -> None:
    """Reviving an agent that was not killed returns False and records nothing."""
    assert monitor.revive(agent="a") is False
    assert monitor.revive_global() is False
    assert monitor.get_events() == []


def test_revive_needs_a_target(monitor: Monitor) -> None:
    """``revive()`` with neither agent nor session is an error (use ``revive_global()``)."""
    with pytest.raises(ValueError, match="revive_global"):
        monitor.revive()


# --- every kill and revive is an event -------------------------------------------------------


def test_kills_and_revives_are_recorded_as_events(monitor: Monitor, clock: ManualClock) -> None:
    """A kill and its revive are stored as ``kill`` and ``revive`` events with the details."""
    monitor.kill_agent("a", reason="cost", actor="oncall")
    clock.advance(90)
    monitor.revive(agent="a", actor="lead")
    (kill,) = monitor.get_events(event_type="kill")
    (revive,) = monitor.get_events(event_type="revive")
    assert kill["agent"] == "a"
    assert kill["level"] == "critical"
    assert {k: kill["data"][k] for k in ("scope", "target", "reason", "actor")} == {
        "scope": "agent", "target": "a", "reason": "cost", "actor": "oncall",
    }
    assert revive["data"]["actor"] == "lead"
    assert revive["data"]["downtime_seconds"] == 90
    assert revive["data"]["expired"] is False


def test_session_kill_events_carry_the_session(monitor: Monitor) -> None:
    """A session kill's event names the session, so it can be found by session."""
    monitor.kill_session("s-1", reason="x")
    (kill,) = monitor.get_events(session_id="s-1")
    assert kill["event_type"] == "kill"
    assert kill["data"]["scope"] == "session"


def test_kills_raise_alerts(clock: ManualClock) -> None:
    """Every kill and revive is also an alert (hooks and channels hear of it); the revive is a
    notice (never firing) and resolves the kill's alert."""
    m = Monitor(clock=clock)
    alerts: list[Any] = []
    m.on_alert(alerts.append)
    m.kill_agent("a", reason="why")
    m.revive(agent="a")
    m.close()
    assert [(a.kind, a.severity, a.state) for a in alerts] == [
        ("kill", "critical", "firing"),
        ("revive", "info", "resolved"),
        ("kill", "critical", "resolved"),
    ]
    assert alerts[0].id == alerts[2].id


def test_kill_counts_in_stats(monitor: Monitor) -> None:
    """``stats()`` counts kills made and kills in force."""
    monitor.kill_agent("a")
    monitor.kill_session("s")
    monitor.revive(agent="a")
    stats = monitor.stats()
    assert (stats["kills"], stats["active_kills"]) == (2, 1)


# --- events while killed ----------------------------------------------------------------------


def test_events_while_killed_are_stored_with_the_scope(monitor: Monitor, clock: ManualClock) -> None:
    """An event from a killed agent is kept as evidence, flagged with the covering scope."""
    monitor.kill_agent("a")
    spend(monitor, clock, 1.0)
    (stored,) = monitor.get_events(event_type="action")
    assert stored["killed_scope"] == "agent"
    assert monitor.stats()["blocked_while_killed"] == 1


def test_events_while_killed_do_not_feed_metrics(monitor: Monitor, clock: ManualClock) -> None:
    """What a killed agent does is not counted in its metrics."""
    spend(monitor, clock, 1.0)
    monitor.kill_agent("a")
    spend(monitor, clock, 100.0)
    assert monitor.get_metrics("a").cost_total == 1.0


@pytest.mark.parametrize(
    ("kill", "scope"),
    [(lambda m: m.kill_session("s-1"), "session"), (lambda m: m.kill_global(), "global")],
)
def test_session_and_global_kills_flag_events(
    monitor: Monitor, clock: ManualClock, kill: Any, scope: str
) -> None:
    """Events covered by a session or global kill carry that scope."""
    kill(monitor)
    spend(monitor, clock, 1.0, session_id="s-1")
    (stored,) = monitor.get_events(event_type="action")
    assert stored["killed_scope"] == scope


# --- TTLs -----------------------------------------------------------------------------------


def test_kill_with_ttl_expires(monitor: Monitor, clock: ManualClock) -> None:
    """A kill with ``ttl_seconds`` covers the agent until the TTL runs out, then not."""
    rec = monitor.kill_agent("a", ttl_seconds=60)
    assert rec.expires_at == NOW + 60
    clock.advance(59.9)
    assert monitor.is_killed("a")
    clock.advance(0.1)
    assert not monitor.is_killed("a")
    monitor.check("a")
    assert monitor.kills() == []


def test_ttl_expiry_is_recorded_as_a_revive(clock: ManualClock) -> None:
    """When a TTL runs out, a ``revive`` event marked ``expired`` is recorded by itself."""
    m = Monitor(clock=clock)
    revives = RecordingSubscriber()
    m.subscribe(revives, event_type="revive")
    m.kill_agent("a", reason="cool off", ttl_seconds=30)
    clock.advance(31)
    assert revives.wait_for(1, timeout=5.0)
    (event,) = revives.events
    assert (event.data["expired"], event.data["actor"], event.data["kill_reason"]) == (
        True, "ttl", "cool off",
    )
    m.close()


def test_ttl_expiry_does_not_stall_the_writer(clock: ManualClock) -> None:
    """After a TTL expiry, events are still written promptly (``flush()`` returns in time)."""
    m = Monitor(clock=clock)
    revives = RecordingSubscriber()
    m.subscribe(revives, event_type="revive")
    m.kill_agent("a", ttl_seconds=1)
    clock.advance(2)
    assert revives.wait_for(1, timeout=5.0)
    spend(m, clock, 0.1)
    assert m.flush(timeout=2.0)
    m.close()


def test_default_ttl_applies_to_every_kill(clock: ManualClock) -> None:
    """``kill_switch.default_ttl_seconds`` gives kills without their own TTL an expiry."""
    m = with_policies(clock, default_ttl_seconds=120)
    assert m.kill_agent("a").expires_at == NOW + 120
    assert m.kill_agent("b", ttl_seconds=5).expires_at == NOW + 5
    m.close()


# --- guard() ----------------------------------------------------------------------------------


def test_guard_runs_and_records_the_block(monitor: Monitor, clock: ManualClock) -> None:
    """``with guard(...)`` runs the block and records one event with its latency and ``ok``."""
    with monitor.guard(agent="a", session_id="s-1", tool="search"):
        pass
    (stored,) = monitor.get_events()
    assert (stored["event_type"], stored["tool"], stored["status"], stored["session_id"]) == (
        "tool_call", "search", "ok", "s-1",
    )
    assert stored["latency_ms"] >= 0.0
    assert stored["timestamp"] == clock.time()
    assert monitor.stats()["repaired"] == 0


def test_guard_refuses_a_killed_agent(monitor: Monitor) -> None:
    """``guard()`` raises ``AgentKilledError`` before the block runs, and records nothing."""
    monitor.kill_agent("a", reason="stop")
    ran = []
    with pytest.raises(AgentKilledError), monitor.guard(agent="a", tool="search"):
        ran.append(True)
    assert ran == []
    assert monitor.get_events(event_type="tool_call") == []


def test_guard_records_failures_and_lets_them_propagate(monitor: Monitor) -> None:
    """An exception in the block is recorded as ``status="error"`` and re-raised unchanged."""
    with pytest.raises(TimeoutError, match="slow"), monitor.guard(agent="a", tool="fetch"):
        raise TimeoutError("slow upstream")
    (stored,) = monitor.get_events()
    assert stored["status"] == "error"
    assert stored["data"] == {"error_type": "TimeoutError", "error": "slow upstream"}
    assert monitor.get_metrics("a").tool_failure_rate == 1.0


def test_guard_as_a_decorator(monitor: Monitor) -> None:
    """``@guard(...)`` checks and records every call, keeping its extra fields each time."""

    @monitor.guard(agent="a", tool="send_email", data={"channel": "smtp"}, user="u-1")
    def send(to: str) -> str:
        return f"sent to {to}"

    assert send("x") == "sent to x"
    assert send("y") == "sent to y"
    stored = monitor.get_events(event_type="tool_call", order="asc")
    assert [e["data"] for e in stored] == [{"channel": "smtp"}, {"channel": "smtp"}]
    assert [e["user"] for e in stored] == ["u-1", "u-1"]
    monitor.kill_agent("a")
    with pytest.raises(AgentKilledError):
        send("z")


def test_guard_checks_the_session(monitor: Monitor) -> None:
    """A guard for a killed session refuses; one for another session of the agent runs."""
    monitor.kill_session("s-1")
    with pytest.raises(AgentKilledError), monitor.guard(agent="a", session_id="s-1"):
        pass
    with monitor.guard(agent="a", session_id="s-2"):
        pass


# --- automatic policies -----------------------------------------------------------------------


def test_cost_policy_kills_within_one_event_of_the_spike(clock: ManualClock) -> None:
    """``cost_per_minute > 5.0`` kills on the very event that crosses it, not one later."""
    m = with_policies(clock, COST_POLICY)
    for _ in range(25):  # $25 in a five-minute window is exactly $5/min: not above
        spend(m, clock, 1.0)
    assert not m.is_killed("a")
    spend(m, clock, 1.0)
    assert m.is_killed("a")
    with pytest.raises(AgentKilledError) as info:
        m.check("a")
    assert info.value.actor == "policy:auto-kill-on-high-cost"
    assert "cost_per_minute=5.2000 > 5" in info.value.reason
    m.close()


def test_the_event_after_an_auto_kill_is_flagged(clock: ManualClock) -> None:
    """The first event after the automatic kill is stored as evidence with ``killed_scope``."""
    m = with_policies(clock, COST_POLICY)
    for _ in range(27):
        spend(m, clock, 1.0)
    flags = [e.get("killed_scope") for e in m.get_events(event_type="action", order="asc")]
    assert flags == [None] * 26 + ["agent"]
    m.close()


def test_policy_anomaly_and_kill_are_recorded(clock: ManualClock) -> None:
    """An automatic kill leaves an ``anomaly``, a ``kill`` and an ``alert`` event, in that order."""
    m = with_policies(clock, COST_POLICY)
    for _ in range(26):
        spend(m, clock, 1.0)
    types = [e["event_type"] for e in m.get_events(order="asc") if e["event_type"] != "action"]
    assert types == ["anomaly", "kill", "alert"]
    (kill,) = m.get_events(event_type="kill")
    assert kill["data"]["policy"] == "auto-kill-on-high-cost"
    m.close()


def test_policy_message_is_the_kill_reason(clock: ManualClock) -> None:
    """A policy's ``message`` is what the kill says."""
    m = with_policies(clock, {**COST_POLICY, "message": "Budget exceeded"})
    for _ in range(26):
        spend(m, clock, 1.0)
    assert m.kills()[0].reason == "Budget exceeded"
    m.close()


def test_revive_rearms_the_policy(clock: ManualClock) -> None:
    """After revive, the agent starts with fresh windows and a new spike kills it again."""
    m = with_policies(clock, COST_POLICY)
    for _ in range(26):
        spend(m, clock, 1.0)
    m.revive(agent="a")
    spend(m, clock, 1.0)
    assert not m.is_killed("a")  # the old spend no longer counts
    assert m.get_metrics("a").cost_total == 1.0
    for _ in range(25):
        spend(m, clock, 1.0)
    assert m.is_killed("a")
    assert m.stats()["kills"] == 2
    m.close()


def test_alert_policies_are_edge_triggered(clock: ManualClock) -> None:
    """A sustained breach alerts once; after it clears, a new breach alerts again."""
    m = with_policies(clock, {**COST_POLICY, "action": "alert", "severity": "high"})
    alerts: list[Any] = []
    m.on_alert(alerts.append)
    for _ in range(40):
        spend(m, clock, 1.0)
    assert len(alerts) == 1
    clock.advance(300)  # the window empties: the condition clears
    spend(m, clock, 0.0)
    for _ in range(30):
        spend(m, clock, 1.0)
    assert [a.severity for a in alerts] == ["high", "high"]
    assert not m.is_killed("a")
    m.close()


def test_kill_session_policy_stops_the_offending_session(clock: ManualClock) -> None:
    """``action: kill_session`` kills the session of the event that crossed the line."""
    m = with_policies(clock, {**COST_POLICY, "action": "kill_session"})
    for _ in range(26):
        spend(m, clock, 1.0, session_id="s-7")
    assert m.is_killed("a", session_id="s-7")
    assert not m.is_killed("a", session_id="s-8")
    m.close()


def test_kill_session_policy_without_a_session_kills_the_agent(clock: ManualClock) -> None:
    """When the offending event has no session, ``kill_session`` falls back to the agent."""
    m = with_policies(clock, {**COST_POLICY, "action": "kill_session"})
    for _ in range(26):
        spend(m, clock, 1.0)
    assert m.is_killed("a")
    assert "no session" in m.kills()[0].reason
    m.close()


def test_kill_global_policy_stops_the_fleet(clock: ManualClock) -> None:
    """``action: kill_global`` stops every agent when one crosses the line."""
    m = with_policies(clock, {"name": "flood", "metric": "event_count", "operator": ">=",
                              "threshold": 10, "action": "kill_global"})
    for _ in range(10):
        spend(m, clock, 0.0)
    assert m.is_killed("someone-else")
    m.revive_global()
    assert not m.is_killed("someone-else")
    m.close()


def test_policy_agent_wildcard(clock: ManualClock) -> None:
    """A policy with ``agent: "sales-*"`` only watches matching agents."""
    m = with_policies(clock, {**COST_POLICY, "agent": "sales-*"})
    for _ in range(30):
        spend(m, clock, 1.0, agent="ops-1")
        spend(m, clock, 1.0, agent="sales-eu")
    assert m.is_killed("sales-eu")
    assert not m.is_killed("ops-1")
    m.close()


def test_policy_min_events(clock: ManualClock) -> None:
    """``min_events`` stops a policy from judging an agent on too few events."""
    m = with_policies(clock, {**COST_POLICY, "min_events": 3})
    spend(m, clock, 100.0)
    spend(m, clock, 100.0)
    assert not m.is_killed("a")
    spend(m, clock, 0.0)
    assert m.is_killed("a")
    m.close()


def test_policy_window_is_its_own(clock: ManualClock) -> None:
    """A policy with ``window_seconds: 60`` reads a one-minute window (here: $6 in 60 s)."""
    m = with_policies(clock, {**COST_POLICY, "window_seconds": 60})
    for _ in range(6):
        spend(m, clock, 1.0)
    assert m.is_killed("a")
    assert 60 in m.windows
    m.close()


def test_policy_ttl_applies_to_its_kills(clock: ManualClock) -> None:
    """A policy's ``ttl_seconds`` is the TTL of the kills it makes."""
    m = with_policies(clock, {**COST_POLICY, "ttl_seconds": 600})
    for _ in range(26):
        spend(m, clock, 1.0)
    assert m.kills()[0].expires_at == NOW + 600
    m.close()


def test_disabled_kill_switch_runs_no_policies(clock: ManualClock) -> None:
    """``kill_switch.enabled: false`` keeps the policies from acting."""
    m = with_policies(clock, COST_POLICY, enabled=False)
    for _ in range(50):
        spend(m, clock, 1.0)
    assert not m.is_killed("a")
    m.close()


# --- kill state lives in the store ------------------------------------------------------------


def test_a_monitor_on_a_shared_store_sees_existing_kills(clock: ManualClock) -> None:
    """Kill state is in the store: a monitor opened on it enforces the kills already there."""
    store = MemoryStore()
    first = Monitor(clock=clock, store=store)
    first.kill_agent("a", reason="shared")
    second = Monitor(clock=clock, store=store)
    with pytest.raises(AgentKilledError, match="shared"):
        second.check("a")
    second.close()
    first.close()


def test_global_revive_after_an_automatic_global_kill_does_not_re_kill(clock: ManualClock) -> None:
    """Reviving the fleet starts every window afresh, so the next event does not trip it again."""
    m = with_policies(
        clock,
        {"name": "fleet-stop", "metric": "cost_per_minute", "threshold": 5.0,
         "action": "kill_global"},
    )
    spend(m, clock, 100.0)
    assert m.is_killed("a")
    m.revive_global()
    spend(m, clock, 0.01)
    assert not m.is_killed("a")
    m.close()


def test_kill_session_policy_stops_each_session_that_keeps_spending(clock: ManualClock) -> None:
    """While an agent's cost stays over the line, every session still spending is stopped."""
    m = with_policies(
        clock,
        {"name": "session-stop", "metric": "cost_per_minute", "threshold": 5.0,
         "action": "kill_session"},
    )
    spend(m, clock, 100.0, session_id="s1")
    assert m.is_killed("a", session_id="s1")
    spend(m, clock, 1.0, session_id="s2")
    assert m.is_killed("a", session_id="s2")
    m.close()


def test_reviving_a_session_re_arms_its_policy(clock: ManualClock) -> None:
    """A revived session that spends again over the line is stopped again."""
    m = with_policies(
        clock,
        {"name": "session-stop", "metric": "cost_per_minute", "threshold": 5.0,
         "action": "kill_session"},
    )
    spend(m, clock, 100.0, session_id="s1")
    m.revive(session_id="s1")
    assert not m.is_killed("a", session_id="s1")
    spend(m, clock, 1.0, session_id="s1")
    assert m.is_killed("a", session_id="s1")
    m.close()


def test_a_snapshot_older_than_a_local_kill_does_not_undo_it(tmp_path: Path) -> None:
    """The poll may read the kill table just before this process's kill commits and apply it
    just after: the kill must stay (and a revive must stay revived) until a newer snapshot."""
    store = SQLiteStore(tmp_path / "k.db")
    switch = KillSwitch(time.time, store)
    before = store.load_kills()
    since = switch.generation
    switch.kill("agent", "x", reason="cost")
    switch.replace_all(before, since=since)  # the stale snapshot arrives after the kill
    assert switch.covering("x") is not None
    since = switch.generation
    after_kill = store.load_kills()
    switch.revive("agent", "x")
    switch.replace_all(after_kill, since=since)  # stale again: it still shows the kill
    assert switch.covering("x") is None
    # A snapshot read after both changes settles them; they are forgotten, not kept forever.
    since = switch.generation
    switch.replace_all(store.load_kills(), since=since)
    assert switch._local == {}
    store.close()


def test_another_process_kill_in_a_snapshot_is_still_adopted(tmp_path: Path) -> None:
    """Laying local changes over a snapshot keeps everything else the snapshot says."""
    store = SQLiteStore(tmp_path / "k.db")
    switch = KillSwitch(time.time, store)
    other = KillSwitch(time.time, SQLiteStore(tmp_path / "k.db"))
    since = switch.generation
    switch.kill("agent", "x")
    other.kill("agent", "y")
    added, _ = switch.replace_all(store.load_kills(), since=since)
    assert {r.target for r in added} == {"y"}
    assert switch.covering("x") is not None
    assert switch.covering("y") is not None
    store.close()


def test_revive_reports_the_kill_it_lifted_even_if_a_poll_lands_mid_way(tmp_path: Path) -> None:
    """The poll thread may adopt the store's post-delete state while ``revive`` is running;
    ``revive`` still returns the record it lifted (``Monitor.revive`` then returns True)."""

    class PollingMidway(SQLiteStore):
        switch: KillSwitch

        def delete_kill(self, scope: str, target: str) -> None:
            super().delete_kill(scope, target)
            self.switch.replace_all(self.load_kills(), since=self.switch.generation)

    store = PollingMidway(tmp_path / "k.db")
    switch = store.switch = KillSwitch(time.time, store)
    switch.kill("agent", "x", reason="cost")
    lifted = switch.revive("agent", "x")
    assert lifted is not None
    assert lifted.reason == "cost"
    assert switch.covering("x") is None
    store.close()


def test_a_kill_persisted_late_still_yields_to_a_later_revive_elsewhere(tmp_path: Path) -> None:
    """A kill applied during a store outage and persisted by ``retry_persist`` is settled:
    once another process revives the agent, this process adopts the revive."""

    class DownOnce(SQLiteStore):
        down = True

        def put_kill(self, record: KillRecord) -> None:
            if self.down:
                self.down = False
                raise StoreError("store unreachable")
            super().put_kill(record)

    store = DownOnce(tmp_path / "k.db")
    switch = KillSwitch(time.time, store)
    switch.kill("agent", "x", reason="cost")  # applied locally, not persisted
    assert switch.retry_persist() == 0
    other = KillSwitch(time.time, SQLiteStore(tmp_path / "k.db"))
    assert other.revive("agent", "x") is not None
    since = switch.generation
    switch.replace_all(store.load_kills(), since=since)
    assert switch.covering("x") is None
    store.close()
