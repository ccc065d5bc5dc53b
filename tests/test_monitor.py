"""Specification of the ``Monitor`` façade: seed 000's quick start, the bus, reads, stats, threads."""

from __future__ import annotations

import runpy
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import redline
from redline import AgentEvent, EventQuery, Monitor, load_config, parse_config
from redline.testing import ManualClock, RecordingSubscriber

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_700_000_040.0

#: Seed 000's quick start, verbatim but for the import line.
SEED_QUICK_START = '''\
import time
from redline import Monitor, load_config, AgentEvent

monitor = Monitor(load_config("monitor.yaml"))

# Record events
monitor.record(AgentEvent(
    timestamp=time.time(),
    event_type="action",
    agent="sales-agent",
    cost_usd=0.007,
    latency_ms=350.0,
    data={"model": "gpt-4"},
))

# View metrics
snap = monitor.get_metrics("sales-agent")
print(f"Events: {snap.event_count}")
print(f"Cost/min: ${snap.cost_per_minute:.4f}")
print(f"Denial rate: {snap.denial_rate:.1%}")

# Kill an agent
monitor.kill_agent("sales-agent", reason="Cost spike detected")
'''


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def monitor(clock: ManualClock) -> Iterator[Monitor]:
    m = Monitor(clock=clock)
    yield m
    m.close()


def ev(clock: ManualClock, **fields: Any) -> AgentEvent:
    fields.setdefault("agent", "a")
    fields.setdefault("timestamp", clock.time())
    return AgentEvent(**fields)


# --- seed 000's quick start -----------------------------------------------------------------


def test_seed_quick_start_runs_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seed's quick start, with only the import changed, runs and prints the right numbers."""
    (tmp_path / "monitor.yaml").write_text((ROOT / "examples" / "monitor.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(SEED_QUICK_START, "quickstart.py", "exec"), namespace)
    namespace["monitor"].close()
    assert capsys.readouterr().out.splitlines() == [
        "Events: 1",
        "Cost/min: $0.0014",
        "Denial rate: 0.0%",
    ]
    assert namespace["monitor"].is_killed("sales-agent")


def test_shipped_quick_start_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``examples/quickstart.py`` runs as the README says (in a fresh copy: kills persist)."""
    (tmp_path / "examples").mkdir()
    for name in ("quickstart.py", "monitor.yaml"):
        shutil.copy(ROOT / "examples" / name, tmp_path / "examples" / name)
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(tmp_path / "examples" / "quickstart.py"))
    namespace["monitor"].close()
    out = capsys.readouterr().out
    assert "Events: 1\nCost/min: $0.0014\nDenial rate: 0.0%\n" in out


def test_quick_start_numbers_are_exact(clock: ManualClock) -> None:
    """With the seed's config: 1 event, $0.007 / 5 min = $0.0014/min, denial rate 0."""
    config = load_config(ROOT / "examples" / "monitor.yaml")
    config.storage.path = None  # the example's store persists kills between runs; start clean
    m = Monitor(config, clock=clock)
    m.record(AgentEvent(timestamp=NOW, event_type="action", agent="sales-agent",
                        cost_usd=0.007, latency_ms=350.0, data={"model": "gpt-4"}))
    snap = m.get_metrics("sales-agent")
    assert (snap.event_count, snap.denial_rate, snap.window_seconds) == (1, 0.0, 300)
    assert snap.cost_per_minute == pytest.approx(0.0014)
    m.record(AgentEvent(timestamp=NOW, event_type="denial", agent="sales-agent"))
    assert m.get_metrics("sales-agent").denial_rate == 0.5
    m.close()


def test_monitor_needs_no_config(clock: ManualClock) -> None:
    """``Monitor()`` alone works: in-memory store, default five-minute window."""
    with Monitor(clock=clock) as m:
        m.record(ev(clock))
        assert m.get_metrics("a").window_seconds == 300
        assert m.stats()["store"] == "memory"


def test_public_api_is_exported() -> None:
    """The names DESIGN.md's public API uses are importable from ``redline``."""
    for name in ("Monitor", "AgentEvent", "load_config", "AgentKilledError", "MetricSnapshot",
                 "ConfigError", "InvalidEventError", "parse_config"):
        assert name in redline.__all__
        assert hasattr(redline, name)


# --- lifecycle ------------------------------------------------------------------------------


def test_flush_makes_recorded_events_visible(monitor: Monitor, clock: ManualClock) -> None:
    """After ``flush()`` returns True, everything recorded is in the store."""
    for _ in range(2500):
        monitor.record(ev(clock))
    assert monitor.flush() is True
    assert monitor.store.count(EventQuery()) == 2500
    assert monitor.stats()["queued"] == 0


def test_close_is_idempotent_and_flushes(clock: ManualClock) -> None:
    """``close()`` writes what is queued and can be called twice."""
    m = Monitor(clock=clock)
    m.record(ev(clock))
    assert m.close() is True
    assert m.close() is True
    assert m.store.count(EventQuery()) == 1


def test_context_manager_closes(clock: ManualClock) -> None:
    """Leaving ``with Monitor(...)`` closes it, flushing what was recorded."""
    with Monitor(clock=clock) as m:
        m.record(ev(clock))
    assert m.store.count(EventQuery()) == 1


# --- the bus --------------------------------------------------------------------------------


def test_typed_subscribers_get_only_their_type(monitor: Monitor, clock: ManualClock) -> None:
    """``subscribe(handler, event_type="error")`` hears errors only."""
    errors = RecordingSubscriber()
    monitor.subscribe(errors, event_type="error")
    monitor.record(ev(clock, event_type="action"))
    monitor.record(ev(clock, event_type="error"))
    assert errors.types == ["error"]


def test_wildcard_subscribers_get_everything(monitor: Monitor, clock: ManualClock) -> None:
    """A subscriber without a type hears every event, governance events included."""
    everything = RecordingSubscriber()
    monitor.subscribe(everything)
    monitor.record(ev(clock, event_type="action"))
    monitor.record(ev(clock, event_type="llm_call"))
    monitor.kill_agent("a")
    assert everything.types == ["action", "llm_call", "kill", "alert"]


def test_unsubscribe_stops_delivery(monitor: Monitor, clock: ManualClock) -> None:
    """The function ``subscribe()`` returns removes the subscriber."""
    seen = RecordingSubscriber()
    unsubscribe = monitor.subscribe(seen)
    monitor.record(ev(clock))
    unsubscribe()
    monitor.record(ev(clock))
    assert len(seen.events) == 1


def test_a_failing_subscriber_is_isolated_and_counted(monitor: Monitor, clock: ManualClock) -> None:
    """A subscriber that raises breaks neither ``record()`` nor the other subscribers."""

    def broken(event: AgentEvent) -> None:
        raise RuntimeError("exporter down")

    seen = RecordingSubscriber()
    monitor.subscribe(broken)
    monitor.subscribe(seen)
    for _ in range(3):
        monitor.record(ev(clock))
    assert len(seen.events) == 3
    assert monitor.stats()["subscriber_errors"] == 3
    assert len(monitor.get_events()) == 3
    assert monitor.get_metrics("a").event_count == 3


def test_subscribers_see_killed_events_flagged(monitor: Monitor, clock: ManualClock) -> None:
    """Events recorded while killed reach subscribers with ``killed_scope`` set."""
    seen = RecordingSubscriber()
    monitor.subscribe(seen, event_type="action")
    monitor.kill_agent("a")
    monitor.record(ev(clock))
    assert seen.events[0].killed_scope == "agent"


# --- reading events -------------------------------------------------------------------------


def _history(monitor: Monitor, clock: ManualClock) -> None:
    """Five events a minute apart: agents a/b alternate, types action/error alternate."""
    for i in range(5):
        monitor.record(ev(clock, timestamp=NOW - 240 + 60 * i, agent="ab"[i % 2],
                          event_type=("action", "error")[i % 2], session_id=f"s-{i % 2}",
                          user=f"u-{i}", data={"i": i}))


def test_get_events_is_newest_first(monitor: Monitor, clock: ManualClock) -> None:
    """``get_events()`` returns the newest events first (the peer returned the oldest)."""
    _history(monitor, clock)
    assert [e["data"]["i"] for e in monitor.get_events()] == [4, 3, 2, 1, 0]


def test_get_events_limit_keeps_the_newest(monitor: Monitor, clock: ManualClock) -> None:
    """``limit=N`` gives the N newest events."""
    _history(monitor, clock)
    assert [e["data"]["i"] for e in monitor.get_events(limit=2)] == [4, 3]


def test_get_events_ascending(monitor: Monitor, clock: ManualClock) -> None:
    """``order="asc"`` gives the oldest first, as the peer did."""
    _history(monitor, clock)
    assert [e["data"]["i"] for e in monitor.get_events(order="asc", limit=2)] == [0, 1]


def test_get_events_rejects_an_unknown_order(monitor: Monitor) -> None:
    """``order`` is ``"asc"`` or ``"desc"``; anything else is an error."""
    with pytest.raises(ValueError, match="order"):
        monitor.get_events(order="newest")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"agent": "a"}, [4, 2, 0]),
        ({"event_type": "error"}, [3, 1]),
        ({"session_id": "s-1"}, [3, 1]),
        ({"user": "u-2"}, [2]),
        ({"agent": "b", "event_type": "action"}, []),
    ],
)
def test_get_events_filters(
    monitor: Monitor, clock: ManualClock, filters: dict[str, str], expected: list[int]
) -> None:
    """Events can be filtered by agent, type, session and user, alone or together."""
    _history(monitor, clock)
    assert [e["data"]["i"] for e in monitor.get_events(**filters)] == expected


@pytest.mark.parametrize(
    "since",
    [NOW - 120, "2m", "2 min ago", "2023-11-14T22:12:00Z", "2023-11-14T23:12:00+01:00"],
)
def test_get_events_since(monitor: Monitor, clock: ManualClock, since: Any) -> None:
    """``since`` takes epoch seconds, an age (``2m``) or ISO 8601 with its offset honoured."""
    _history(monitor, clock)
    assert [e["data"]["i"] for e in monitor.get_events(since=since)] == [4, 3, 2]


def test_get_events_until(monitor: Monitor, clock: ManualClock) -> None:
    """``until`` bounds the range from above (inclusive)."""
    _history(monitor, clock)
    assert [e["data"]["i"] for e in monitor.get_events(until="3m")] == [1, 0]


def test_get_events_rows_have_every_field(monitor: Monitor, clock: ManualClock) -> None:
    """Each row has ``seq`` and every event field, defaults included, as the peer's rows did."""
    monitor.record(ev(clock))
    (row,) = monitor.get_events()
    assert set(row) >= {"seq", *AgentEvent.__struct_fields__}
    assert (row["event_type"], row["data"], row["session_id"], row["tags"]) == (
        "action", {}, None, [],
    )


def test_sequence_numbers_increase(monitor: Monitor, clock: ManualClock) -> None:
    """Stored events are numbered in the order they were recorded."""
    _history(monitor, clock)
    seqs = [e["seq"] for e in monitor.get_events(order="asc")]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 5


def test_events_streams_stored_events(monitor: Monitor, clock: ManualClock) -> None:
    """``events()`` yields ``StoredEvent`` objects lazily with the same filters."""
    _history(monitor, clock)
    stream = monitor.events(agent="b")
    assert [s.event.data["i"] for s in stream] == [3, 1]


# --- stats and tracking -----------------------------------------------------------------------


def test_stats_counts_what_happened(monitor: Monitor, clock: ManualClock) -> None:
    """``stats()`` reports recorded, written, repaired, rejected, redacted and blocked events."""
    monitor.record(ev(clock))
    monitor.record(ev(clock, cost_usd=-1.0))
    monitor.record(ev(clock, agent=""))
    monitor.record(ev(clock, data={"password": "p"}))
    monitor.kill_agent("a")
    monitor.record(ev(clock))
    monitor.flush()
    stats = monitor.stats()
    assert stats["recorded"] == 4
    assert stats["rejected"] == 1
    assert stats["repaired"] == 1
    assert stats["redacted"] == 1
    assert stats["blocked_while_killed"] == 1
    assert stats["written"] == monitor.store.count(EventQuery())
    assert (stats["queued"], stats["dropped"], stats["internal_errors"]) == (0, 0, 0)
    assert stats["agents"] == 1


def test_agents_section_filters_tracking(clock: ManualClock) -> None:
    """The peer's ``agents`` section: a disabled agent and unlisted types are not tracked."""
    m = Monitor(parse_config({"agents": {
        "off": {"enabled": False},
        "picky": {"event_types": ["denial"]},
    }}), clock=clock)
    m.record(ev(clock, agent="off"))
    m.record(ev(clock, agent="picky", event_type="action"))
    m.record(ev(clock, agent="picky", event_type="denial"))
    m.record(ev(clock, agent="other"))
    assert m.stats()["filtered"] == 2
    assert [e["agent"] for e in m.get_events(order="asc")] == ["picky", "other"]
    m.close()


# --- threads ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_eight_threads_lose_nothing(clock: ManualClock) -> None:
    """8 threads × 50,000 events are counted exactly, in the metrics, the stats and the store."""
    threads, per_thread = 8, 50_000
    m = Monitor(parse_config({"storage": {"queue_size": 1_000_000}}), clock=clock)
    start = threading.Barrier(threads)

    def work(k: int) -> None:
        start.wait()
        record = m.record
        event = AgentEvent(timestamp=NOW, agent=f"agent-{k % 4}", session_id=f"s-{k}",
                           cost_usd=0.001, latency_ms=5.0)
        for _ in range(per_thread):
            record(event)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    total = threads * per_thread
    assert m.flush(timeout=60)
    assert m.get_metrics(fleet=True).event_count == total
    assert [s.event_count for s in m.get_all_metrics()] == [total // 4] * 4
    m.close()
    stats = m.stats()
    assert (stats["recorded"], stats["dropped"], stats["internal_errors"]) == (total, 0, 0)
    assert m.store.count(EventQuery()) == total


def test_kills_and_records_race_safely(clock: ManualClock) -> None:
    """Killing and reviving while other threads record never raises and never loses events."""
    m = Monitor(clock=clock)
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set():
            m.kill_agent("a")
            m.revive(agent="a")

    t = threading.Thread(target=killer)
    t.start()
    for _ in range(5000):
        m.record(ev(clock))
    stop.set()
    t.join()
    m.flush()
    stats = m.stats()
    assert stats["internal_errors"] == 0
    assert len(m.get_events(event_type="action", limit=None)) == 5000
    m.close()
