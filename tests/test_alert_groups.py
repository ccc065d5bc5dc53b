"""Alert groups: one open alert per cause, with a count; repeats, quiet resolution, notices."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from redline import AgentEvent, Monitor, parse_config
from redline.alerts.manager import Alert
from redline.store.base import EventQuery
from redline.testing import ManualClock

NOW = 1_700_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def make(clock: ManualClock, **alerts: Any) -> tuple[Monitor, list[Alert]]:
    monitor = Monitor(parse_config({"alerts": alerts}), clock=clock)
    seen: list[Alert] = []
    monitor.on_alert(seen.append)
    return monitor, seen


@pytest.fixture
def m(clock: ManualClock) -> Iterator[tuple[Monitor, list[Alert]]]:
    monitor, seen = make(clock, group_repeat_seconds=600, group_quiet_seconds=300)
    yield monitor, seen
    monitor.close()


def emails(m: Monitor, clock: ManualClock, n: int, agent: str = "mailer") -> None:
    for _ in range(n):
        clock.advance(0.1)
        m.record(
            AgentEvent(
                timestamp=clock.time(), agent=agent, event_type="tool_call", tool="send_email"
            )
        )


def suspicious(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.rule == "suspicious_action"]


def stored_states(m: Monitor, alert_id: str) -> list[dict[str, Any]]:
    m.flush()
    return [
        s.event.data
        for s in m.store.query(EventQuery(event_type="alert", order="asc"))
        if s.event.data.get("id") == alert_id
    ]


def test_three_hundred_repeats_are_one_group_with_a_count(
    m: tuple[Monitor, list[Alert]], clock: ManualClock
) -> None:
    monitor, seen = m
    emails(monitor, clock, 300)
    monitor.run_duties()
    active = suspicious(monitor.active_alerts())
    assert len(active) == 1, active
    group = active[0]
    assert group.count == 300
    assert group.state == "firing"
    assert group.first_seen == pytest.approx(NOW + 0.1)
    assert group.last_seen == pytest.approx(NOW + 30.0)
    assert len(suspicious(seen)) == 1  # the channels heard of it once
    # The stored state carries the count: `redline alerts` and /v1/alerts read it from there.
    assert stored_states(monitor, group.id)[-1]["count"] == 300
    # Another agent's send_email is another cause, its own group.
    emails(monitor, clock, 2, agent="other")
    assert {(a.agent, a.count) for a in suspicious(monitor.active_alerts())} == {
        ("mailer", 300),
        ("other", 2),
    }


def test_a_repeat_is_notified_again_only_after_the_repeat_interval(
    m: tuple[Monitor, list[Alert]], clock: ManualClock
) -> None:
    monitor, seen = m
    emails(monitor, clock, 1)
    for _ in range(5):  # every 200 s: within the quiet period, so the group stays open
        clock.advance(200)
        emails(monitor, clock, 1)
        monitor.run_duties()
    told = suspicious(seen)
    # Notified at t=0 and again at the first repeat 600 s or more later (t=600), not at each.
    assert [(a.last_seen or 0.0) - NOW for a in told] == pytest.approx([0.1, 600.4])
    assert told[-1].count == 4
    assert told[-1].id == told[0].id


def test_a_quiet_group_resolves_and_a_new_occurrence_opens_a_new_one(
    m: tuple[Monitor, list[Alert]], clock: ManualClock
) -> None:
    monitor, seen = m
    emails(monitor, clock, 3)
    first = suspicious(monitor.active_alerts())[0]
    clock.advance(299)
    monitor.run_duties()
    assert [a.id for a in suspicious(monitor.active_alerts())] == [first.id]
    clock.advance(2)
    monitor.run_duties()
    assert suspicious(monitor.active_alerts()) == []
    resolved = suspicious(seen)[-1]
    assert resolved.id == first.id
    assert resolved.state == "resolved"
    assert resolved.count == 3
    assert resolved.details["resolved_by"] == "quiet"
    assert stored_states(monitor, first.id)[-1]["state"] == "resolved"
    emails(monitor, clock, 1)
    again = suspicious(monitor.active_alerts())
    assert len(again) == 1
    assert again[0].id != first.id
    assert again[0].count == 1


def test_a_kill_stays_open_until_revived_and_the_revive_is_a_notice(
    m: tuple[Monitor, list[Alert]], clock: ManualClock
) -> None:
    monitor, seen = m
    monitor.kill_agent("mailer", "runaway", actor="test")
    kills = [a for a in monitor.active_alerts() if a.kind == "kill"]
    assert len(kills) == 1
    assert kills[0].state == "firing"
    clock.advance(10_000)  # far past the quiet period: a kill does not resolve by itself
    monitor.run_duties()
    assert [a.id for a in monitor.active_alerts() if a.kind == "kill"] == [kills[0].id]
    assert monitor.revive("mailer", actor="test")
    assert [a for a in monitor.active_alerts() if a.kind == "kill"] == []
    resolved = [a for a in seen if a.id == kills[0].id][-1]
    assert resolved.state == "resolved"
    assert resolved.details["resolved_by"] == "revived"
    notices = [a for a in seen if a.severity == "info"]
    assert notices
    assert all(a.state == "resolved" for a in notices)
    assert all(a.state != "firing" for a in monitor.active_alerts())


def test_acknowledging_a_group_silences_its_repeats(
    m: tuple[Monitor, list[Alert]], clock: ManualClock
) -> None:
    monitor, seen = m
    emails(monitor, clock, 1)
    group = suspicious(monitor.active_alerts())[0]
    acked = monitor.ack_alert(group.id, by="oncall")
    assert acked is not None
    assert acked.state == "acknowledged"
    before = len(suspicious(seen))
    clock.advance(250)
    emails(monitor, clock, 1)
    clock.advance(250)
    emails(monitor, clock, 1)
    clock.advance(250)
    emails(monitor, clock, 1)  # past the repeat interval, but acknowledged: not notified
    monitor.run_duties()
    assert len(suspicious(seen)) == before
    now = suspicious(monitor.active_alerts())[0]
    assert now.state == "acknowledged"
    assert now.count == 4
