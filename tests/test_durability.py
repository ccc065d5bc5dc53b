"""The durability contract (DESIGN.md, principle 2), checked from outside the process that wrote.

An event is durable once ``flush()`` returns, once the writer's interval has passed, or at once
for sync types; ``close()``, the context manager and SIGTERM flush; a crash (SIGKILL) loses at
most the un-flushed tail, never a committed row, and never corrupts the chain. Every check reads
the file through a separate ``sqlite3`` connection (or a separate process).
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from redline import AgentEvent, Monitor, parse_config
from redline.store.sqlite import SQLiteStore

#: Keep the writer asleep unless asked: no tick, no interval, batches bigger than the test.
LAZY = {"flush_interval_seconds": 30.0, "batch_size": 10_000}
LAZY_KILLS = {"poll_interval_seconds": 30.0}


def monitor_on(path: Path, storage: dict[str, Any] | None = None, **sections: Any) -> Monitor:
    config = parse_config({"storage": {"path": str(path), **(storage or {})}, **sections})
    return Monitor(config)


def ev(i: int, event_type: str = "action", marker: str = "m") -> AgentEvent:
    return AgentEvent(agent="a", event_type=event_type, data={"marker": marker, "i": i})


def test_flush_makes_events_durable(db_path: Path, sql_count: Callable[..., int]) -> None:
    """Once ``flush()`` returns, another connection sees every event recorded before it."""
    monitor = monitor_on(db_path, LAZY, kill_switch=LAZY_KILLS)
    for i in range(250):
        monitor.record(ev(i))
    assert sql_count() == 0  # the writer is asleep: nothing was committed behind our back
    assert monitor.flush(10)
    assert sql_count() == 250
    monitor.close()


def test_flush_interval_commits_without_flush(db_path: Path, sql_count: Callable[..., int]) -> None:
    """With no flush() call, an event is committed within a few flush intervals (0.2 s)."""
    monitor = monitor_on(
        db_path, {"flush_interval_seconds": 0.2, "batch_size": 10_000}, kill_switch=LAZY_KILLS
    )
    start = time.monotonic()
    monitor.record(ev(1))
    deadline = start + 5.0
    while sql_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)  # polling the file is the measurement, not a synchronisation
    elapsed = time.monotonic() - start
    assert sql_count() == 1, "not committed within 5 s"
    assert elapsed < 2.0, f"took {elapsed:.3f}s for a 0.2 s flush interval"
    monitor.close()


def test_sync_type_is_committed_before_record_returns_with_durability_sync(
    db_path: Path, sql_count: Callable[..., int]
) -> None:
    """``durability: sync``: a ``denial`` (a sync type by default) is on disk when ``record()``
    returns."""
    monitor = monitor_on(db_path, {**LAZY, "durability": "sync"}, kill_switch=LAZY_KILLS)
    monitor.record(ev(1))
    monitor.record(ev(2, event_type="denial"))
    assert sql_count("event_type = 'denial'") == 1
    assert sql_count() == 2  # and everything queued before it
    monitor.close()


def _wait_for_rows(sql_count: Callable[..., int], n: int, timeout: float = 5.0) -> float:
    """Seconds until another connection sees ``n`` rows (the measurement of a group commit)."""
    start = time.monotonic()
    while sql_count() < n and time.monotonic() - start < timeout:
        time.sleep(0.002)  # polling the file is the measurement, not a synchronisation
    return time.monotonic() - start


def test_group_durability_commits_a_denial_at_once_without_waiting(
    db_path: Path, sql_count: Callable[..., int]
) -> None:
    """``durability: group`` (the default): a denial wakes the writer, which commits it (and
    everything before it) at once, although the flush interval is 30 s and nobody flushed."""
    monitor = monitor_on(db_path, LAZY, kill_switch=LAZY_KILLS)
    monitor.record(ev(1))
    assert sql_count() == 0
    monitor.record(ev(2, event_type="denial"))
    elapsed = _wait_for_rows(sql_count, 2)
    assert sql_count() == 2, "the denial was not committed by the group commit"
    assert elapsed < 2.0  # within one commit's time, not the 30 s interval
    monitor.close()


_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("LOCKED", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
print("RELEASED", flush=True)
"""


@pytest.mark.slow
def test_record_never_waits_while_the_sqlite_file_is_locked(
    db_path: Path, sql_count: Callable[..., int], spawn: Callable[..., Any]
) -> None:
    """With another process holding the SQLite write lock, a denial's ``record()`` and one that
    trips a kill policy return at once, the kill is enforced in this process at once, and both
    are stored (and the kill persisted) once the lock is released."""
    monitor = monitor_on(
        db_path,
        {"flush_interval_seconds": 30.0, "batch_size": 10_000},
        kill_switch={
            "policies": [{"name": "no-errors", "metric": "error_count", "operator": ">=",
                          "threshold": 1, "action": "kill_agent"}],
        },
    )
    monitor.record(ev(0))
    assert monitor.flush(10)
    locker = spawn(_LOCKER, str(db_path))
    locker.expect("LOCKED")
    took: list[float] = []
    for i in range(20):
        start = time.perf_counter()
        monitor.record(ev(i, event_type="denial"))
        took.append(time.perf_counter() - start)
    start = time.perf_counter()
    monitor.record(AgentEvent(agent="a", event_type="error", data={"i": 1}))
    kill_took = time.perf_counter() - start
    assert monitor.is_killed("a"), "the kill is enforced in memory before record() returns"
    took.sort()
    # Before: 5 s per denial (the busy timeout) and 40 s for the kill. A wide bound for CI noise.
    assert took[len(took) // 2] < 0.010, took
    assert took[-1] < 0.2, took
    assert kill_took < 0.2, kill_took
    locker.send("go")
    locker.expect("RELEASED")
    assert monitor.flush(30)
    assert sql_count("event_type = 'denial'") == 20
    assert sql_count("event_type = 'error'") == 1
    assert sql_count("event_type = 'kill'") == 1
    monitor.run_duties()  # persists the kill if the writer's own duty has not yet
    other = SQLiteStore(str(db_path))
    try:
        assert [(k.scope, k.target) for k in other.load_kills()] == [("agent", "a")]
    finally:
        other.close()
    monitor.close()


def test_custom_sync_types_are_honoured(db_path: Path, sql_count: Callable[..., int]) -> None:
    """``storage.sync_types`` decides which types commit synchronously."""
    monitor = monitor_on(
        db_path, {**LAZY, "sync_types": ["tool_call"], "durability": "sync"}, kill_switch=LAZY_KILLS
    )
    monitor.record(ev(1, event_type="denial"))
    assert sql_count() == 0
    monitor.record(ev(2, event_type="tool_call"))
    assert sql_count() == 2
    monitor.close()


def test_close_flushes(db_path: Path, sql_count: Callable[..., int]) -> None:
    """``close()`` commits whatever is still queued."""
    monitor = monitor_on(db_path, LAZY, kill_switch=LAZY_KILLS)
    for i in range(500):
        monitor.record(ev(i))
    assert sql_count() == 0
    assert monitor.close()
    assert sql_count() == 500


def test_context_manager_flushes(db_path: Path, sql_count: Callable[..., int]) -> None:
    """Leaving ``with Monitor(...)`` commits whatever is still queued."""
    with monitor_on(db_path, LAZY, kill_switch=LAZY_KILLS) as monitor:
        for i in range(500):
            monitor.record(ev(i))
        assert sql_count() == 0
    assert sql_count() == 500


_CRASH_CHILD = """
import sys
from redline import AgentEvent, Monitor, parse_config
path, n = sys.argv[1], int(sys.argv[2])
monitor = Monitor(parse_config({"storage": {"path": path}}))
for i in range(n):
    monitor.record(AgentEvent(agent="crash", data={"marker": "pre", "i": i}))
assert monitor.flush(60)
print("FLUSHED", flush=True)
i = 0
while True:
    monitor.record(AgentEvent(agent="crash", data={"marker": "post", "i": i}))
    i += 1
    if i % 1000 == 0:
        print("POST", i, flush=True)
"""
N = 5_000


@pytest.mark.slow
@pytest.mark.parametrize(
    "post_lines", [0, 5, 100], ids=["at-flush", "after-5k-more", "after-100k-more"]
)
def test_sigkill_loses_no_flushed_event(
    db_path: Path, spawn: Callable[..., Any], post_lines: int
) -> None:
    """SIGKILL after flush(): all N flushed events survive, no partial row, the chain verifies."""
    child = spawn(_CRASH_CHILD, str(db_path), str(N))
    child.expect("FLUSHED", timeout=60)
    for _ in range(post_lines):
        child.expect("POST", timeout=60)
    assert child.kill(signal.SIGKILL) == -signal.SIGKILL

    store = SQLiteStore(db_path)  # opening recovers the WAL, as the next process would
    report = store.verify()
    assert report.ok, f"{report.damage} at {report.first_bad_seq}: {report.detail}"
    store.close()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        total, low, high, nulls = conn.execute(
            "SELECT count(*), min(seq), max(seq), count(*) - count(payload) FROM events"
        ).fetchone()
        assert (low, high - low + 1, nulls) == (1, total, 0)  # contiguous, no empty rows
        pre = set()
        for (payload,) in conn.execute("SELECT payload FROM events"):
            event = msgspec.json.decode(payload, type=AgentEvent)  # every row decodes
            if event.data["marker"] == "pre":
                pre.add(event.data["i"])
    finally:
        conn.close()
    assert pre == set(range(N))
    assert report.checked == total


# --- SIGTERM (written against the lead's API: storage.flush_on_sigterm, default true) -------

_SIGTERM_CHILD = """
import signal, sys
from redline import AgentEvent, Monitor, parse_config
path, on_sigterm, user_handler = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
if user_handler:
    def handler(signum, frame):
        print("USER HANDLER", flush=True)
        sys.exit(3)
    signal.signal(signal.SIGTERM, handler)
monitor = Monitor(parse_config({
    "storage": {"path": path, "flush_interval_seconds": 30, "batch_size": 10000,
                "flush_on_sigterm": on_sigterm},
    "kill_switch": {"poll_interval_seconds": 30},
}))
for i in range(500):
    monitor.record(AgentEvent(agent="term", data={"i": i}))
print("RECORDED", flush=True)
sys.stdin.readline()
"""


@pytest.mark.slow
def test_sigterm_flushes_then_dies_by_sigterm(
    db_path: Path, spawn: Callable[..., Any], sql_count: Callable[..., int]
) -> None:
    """On SIGTERM the monitor flushes its queue, then the process still dies of SIGTERM."""
    child = spawn(_SIGTERM_CHILD, str(db_path), "1", "0")
    child.expect("RECORDED")
    assert sql_count() == 0
    assert child.kill(signal.SIGTERM) == -signal.SIGTERM
    assert sql_count() == 500
    store = SQLiteStore(db_path)
    assert store.verify().ok
    store.close()


@pytest.mark.slow
def test_sigterm_chains_to_the_applications_handler(
    db_path: Path, spawn: Callable[..., Any], sql_count: Callable[..., int]
) -> None:
    """A handler the application installed first still runs, after the flush."""
    child = spawn(_SIGTERM_CHILD, str(db_path), "1", "1")
    child.expect("RECORDED")
    assert child.kill(signal.SIGTERM) == 3
    assert "USER HANDLER" in child.proc.stdout.read().decode()
    assert sql_count() == 500


@pytest.mark.slow
def test_sigterm_without_the_handler_loses_the_queue(
    db_path: Path, spawn: Callable[..., Any], sql_count: Callable[..., int]
) -> None:
    """With ``flush_on_sigterm: false`` nothing flushes on SIGTERM (proves the handler does it)."""
    child = spawn(_SIGTERM_CHILD, str(db_path), "0", "0")
    child.expect("RECORDED")
    assert child.kill(signal.SIGTERM) == -signal.SIGTERM
    assert sql_count() == 0
