"""Kill switches are state: shared through the store between processes, kept across restarts.

DESIGN.md's bound: a kill made by one process is seen by every monitor on the same SQLite file
within 100 ms (p99). The child measures the delay itself, from a timestamp the parent takes just
before the kill and passes on stdin (both read the same machine clock). The child polls
``is_killed`` every 0.2 ms, as an agent checks between steps; a pure busy loop would hold the GIL
and delay its own monitor's poller by a switch interval (5 ms) at every hand-over.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redline import AgentEvent, AgentKilledError, Monitor, parse_config
from redline.testing import ManualClock

_WATCHER = """
import sys, time
from redline import Monitor, parse_config
monitor = Monitor(parse_config({
    "storage": {"path": sys.argv[1]},
    "kill_switch": {"poll_interval_seconds": 0.02},
}))
print("READY", flush=True)
for line in sys.stdin:
    want, started = line.split()
    want = want == "1"
    deadline = time.monotonic() + 5.0
    while monitor.is_killed("x") != want and time.monotonic() < deadline:
        time.sleep(0.0002)  # an agent between steps: lets the poller have the GIL
    flipped = monitor.is_killed("x") == want
    print("SEEN" if flipped else "MISSED", time.time() - float(started), flush=True)
monitor.close()
"""
# 100 kill/revive trials, so the p99 below is a percentile, not the single slowest sample.
TRIALS = 100


def config_for(path: Path, **kill_switch: Any) -> Any:
    return parse_config({"storage": {"path": str(path)}, "kill_switch": kill_switch})


@pytest.mark.slow
def test_kill_reaches_another_process_within_100ms_p99(
    db_path: Path, spawn: Callable[..., Any]
) -> None:
    """Kill/revive 100 times alternately; the other process's ``is_killed`` flips < 100 ms p99."""
    monitor = Monitor(config_for(db_path))
    child = spawn(_WATCHER, str(db_path))
    child.expect("READY")
    delays = []
    for trial in range(TRIALS):
        kill = trial % 2 == 0
        started = time.time()
        if kill:
            monitor.kill_agent("x", reason=f"trial {trial}")
        else:
            assert monitor.revive(agent="x")
        child.send(f"{int(kill)} {started!r}")
        word, delay = child.readline().split()
        assert word == "SEEN", f"trial {trial}: the child never saw the change"
        delays.append(float(delay))
    monitor.close()
    child.wait()
    ordered = sorted(delays)
    p99 = ordered[math.ceil(0.99 * len(ordered)) - 1]
    summary = f"p50 {statistics.median(delays) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms"
    assert p99 < 0.100, summary


def test_kill_survives_a_restart(db_path: Path) -> None:
    """A kill committed by one Monitor is in force for a new Monitor on the same file."""
    with Monitor(config_for(db_path)) as first:
        first.kill_agent("x", reason="cost spike")
        first.kill_session("s-9", reason="loop")
    with Monitor(config_for(db_path)) as second:
        assert second.is_killed("x")
        assert second.is_killed("other", session_id="s-9")
        assert not second.is_killed("other")
        with pytest.raises(AgentKilledError):
            second.check("x")
        (rec,) = [r for r in second.kills() if r.scope == "agent"]
        assert (rec.target, rec.reason) == ("x", "cost spike")


def test_revive_survives_a_restart(db_path: Path) -> None:
    """A revive is persisted too: after kill, revive and restart, nothing is killed."""
    with Monitor(config_for(db_path)) as first:
        first.kill_agent("x")
        first.revive(agent="x")
    with Monitor(config_for(db_path)) as second:
        assert not second.is_killed("x")
        assert second.kills() == []


def test_ttl_expires_across_a_restart(db_path: Path) -> None:
    """A 60 s TTL kill reopened 61 s later is lifted, with a ``revive`` event by actor ``ttl``."""
    clock = ManualClock()
    with Monitor(config_for(db_path), clock=clock) as first:
        first.kill_agent("x", reason="cool down", ttl_seconds=60)
        assert first.is_killed("x")
    clock.advance(61)
    with Monitor(config_for(db_path, poll_interval_seconds=0.02), clock=clock) as second:
        assert not second.is_killed("x")
        second.record(AgentEvent(timestamp=clock.time(), agent="x"))
        deadline = time.monotonic() + 5.0
        revives: list[dict[str, Any]] = []
        while not revives and time.monotonic() < deadline:
            revives = second.get_events(event_type="revive")
            if not revives:
                time.sleep(0.01)  # the periodic duty runs on the writer thread
        assert len(revives) == 1, "no revive event within 5 s"
        data = revives[0]["data"]
        assert (data["actor"], data["target"], data["expired"]) == ("ttl", "x", True)
        assert second.store.load_kills() == []
        (event,) = second.get_events(agent="x", event_type="action")
        assert event.get("killed_scope") is None  # recorded after expiry: not flagged


def test_a_stale_monitor_revives_a_kill_it_has_not_polled_and_records_it(tmp_path: Path) -> None:
    """Revive from a monitor that has not yet seen a kill made elsewhere: the kill is lifted,
    ``revive()`` says True, and a revive event names who lifted it (never a silent delete)."""
    from redline import AgentEvent, Monitor, parse_config

    db = tmp_path / "events.db"
    lazy = {"storage": {"path": str(db)}, "kill_switch": {"poll_interval_seconds": 30.0}}
    killer = Monitor(parse_config(lazy))
    stale = Monitor(parse_config(lazy))
    try:
        killer.record(AgentEvent(agent="x"))
        killer.kill_agent("x", reason="incident", actor="alice")
        assert not stale.is_killed("x")  # it has not polled yet
        assert stale.revive(agent="x", actor="bob") is True
        stale.flush()
        revives = stale.get_events(event_type="revive", limit=None)
        assert [(e["data"]["actor"], e["data"]["kill_reason"]) for e in revives] == [
            ("bob", "incident")
        ]
        killer.run_duties()
        assert not killer.is_killed("x")
    finally:
        killer.close()
        stale.close()
