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


def test_sync_type_is_committed_before_record_returns(
    db_path: Path, sql_count: Callable[..., int]
) -> None:
    """A ``denial`` (a sync type by default) is on disk when ``record()`` returns."""
    monitor = monitor_on(db_path, LAZY, kill_switch=LAZY_KILLS)
    monitor.record(ev(1))
    monitor.record(ev(2, event_type="denial"))
    assert sql_count("event_type = 'denial'") == 1
    assert sql_count() == 2  # and everything queued before it
    monitor.close()


def test_custom_sync_types_are_honoured(db_path: Path, sql_count: Callable[..., int]) -> None:
    """``storage.sync_types`` decides which types commit synchronously."""
    monitor = monitor_on(db_path, {**LAZY, "sync_types": ["tool_call"]}, kill_switch=LAZY_KILLS)
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
