"""The background writer behind ``record()``: full-queue policies, a failing store, spilling.

A :class:`BlockingStore` holds the writer inside ``append()`` until the test releases it, so the
queue's state is known exactly when the next events arrive: no timing, no sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from redline import AgentEvent, Monitor, parse_config
from redline.exceptions import StoreError
from redline.store.base import EventQuery
from redline.store.memory import MemoryStore
from redline.store.sqlite import SQLiteStore


class BlockingStore:
    """Wraps a store; ``append()`` signals ``entered`` then waits for ``release``."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner if inner is not None else MemoryStore()
        self.backend = self.inner.backend
        self.entered = threading.Event()
        self.release = threading.Event()

    def append(self, events: Sequence[AgentEvent]) -> None:
        self.entered.set()
        if not self.release.wait(30):
            raise StoreError("the test never released the store")
        self.inner.append(events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FlakyStore(MemoryStore):
    """A memory store whose first ``failures`` appends raise."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.calls = 0

    def append(self, events: Sequence[AgentEvent]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreError("disk on fire")
        super().append(events)


def ev(i: int) -> AgentEvent:
    return AgentEvent(agent="a", event_type="action", data={"i": i})


def stored_indexes(store: Any) -> list[int]:
    return [s.event.data["i"] for s in store.query(EventQuery(order="asc"))]


def blocked_monitor(policy: str, store: BlockingStore, **storage: Any) -> Monitor:
    """A monitor with a 10-event queue whose writer is stuck inside ``append()`` with event 0."""
    config = parse_config(
        {"storage": {"queue_size": 10, "batch_size": 1, "full_policy": policy, **storage}}
    )
    monitor = Monitor(config, store=store)
    monitor.record(ev(0))
    assert store.entered.wait(10), "the writer never reached append()"
    return monitor


def test_drop_oldest_counts_exactly_and_keeps_the_newest() -> None:
    """With 10 slots full, 5 more events drop the 5 oldest queued ones: dropped == 5."""
    store = BlockingStore()
    monitor = blocked_monitor("drop_oldest", store)
    for i in range(1, 16):
        monitor.record(ev(i))
    assert monitor.stats()["dropped"] == 5
    assert monitor.stats()["queued"] == 10
    store.release.set()
    assert monitor.flush(10)
    assert stored_indexes(store.inner) == [0, *range(6, 16)]
    monitor.close()


def test_drop_newest_counts_exactly_and_keeps_the_oldest() -> None:
    """With 10 slots full, 5 more events are themselves dropped: dropped == 5."""
    store = BlockingStore()
    monitor = blocked_monitor("drop_newest", store)
    for i in range(1, 16):
        monitor.record(ev(i))
    assert monitor.stats()["dropped"] == 5
    store.release.set()
    assert monitor.flush(10)
    assert stored_indexes(store.inner) == list(range(11))
    monitor.close()


def test_block_policy_drops_after_its_timeout() -> None:
    """``block`` waits ``block_timeout_seconds`` for room, then drops (and counts) the event."""
    store = BlockingStore()
    monitor = blocked_monitor("block", store, block_timeout_seconds=0.05)
    for i in range(1, 12):
        monitor.record(ev(i))
    assert monitor.stats()["dropped"] == 1
    store.release.set()
    assert monitor.flush(10)
    assert stored_indexes(store.inner) == list(range(11))
    monitor.close()


def test_flush_times_out_while_the_store_is_stuck() -> None:
    """``flush(timeout)`` returns False when the store cannot commit in time, True once it can."""
    store = BlockingStore()
    monitor = blocked_monitor("drop_oldest", store)
    monitor.record(ev(1))
    assert monitor.flush(0.05) is False
    store.release.set()
    assert monitor.flush(10) is True
    monitor.close()


def test_failing_store_loses_nothing_and_counts_errors() -> None:
    """A store failing its first 3 appends loses nothing, keeps order, counts write_errors == 3."""
    store = FlakyStore(failures=3)
    monitor = Monitor(store=store)
    for i in range(100):
        monitor.record(ev(i))
    assert monitor.flush(30)
    assert stored_indexes(store) == list(range(100))
    stats = monitor.stats()
    assert stats["write_errors"] == 3
    assert stats["dropped"] == 0
    assert "disk on fire" in stats["last_write_error"]
    monitor.close()


def test_record_from_many_threads_loses_nothing() -> None:
    """4 threads x 2,500 events through the writer: 10,000 stored, none dropped."""
    store = MemoryStore()
    monitor = Monitor(store=store)

    def work(t: int) -> None:
        for i in range(2500):
            monitor.record(AgentEvent(agent=f"t{t}", data={"i": i}))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert monitor.flush(30)
    assert store.count(EventQuery()) == 10_000
    for t in range(4):
        seen = [s.event.data["i"] for s in store.query(EventQuery(agent=f"t{t}", order="asc"))]
        assert seen == list(range(2500))
    assert monitor.stats()["dropped"] == 0
    monitor.close()


# --- the spill policy (written against the lead's API: storage.full_policy: spill) ----------


@pytest.mark.slow
def test_spill_policy_keeps_overflow_and_replays_it_at_the_next_start(tmp_path: Path) -> None:
    """Overflow goes to ``spill_path`` and the next Monitor replays it: all 16 events stored."""
    db = tmp_path / "events.db"
    spill = tmp_path / "spill.jsonl"
    store = BlockingStore(SQLiteStore(db))
    monitor = blocked_monitor("spill", store, spill_path=str(spill))
    for i in range(1, 16):
        monitor.record(ev(i))
    stats = monitor.stats()
    assert (stats["spilled"], stats["dropped"]) == (5, 0)
    assert len(spill.read_bytes().splitlines()) == 5
    store.release.set()
    assert monitor.close()

    config = parse_config(
        {"storage": {"path": str(db), "full_policy": "spill", "spill_path": str(spill)}}
    )
    with Monitor(config) as again:
        assert again.stats()["replayed_from_spill"] == 5
        assert again.flush(10)
        assert sorted(e["data"]["i"] for e in again.get_events(limit=None)) == list(range(16))
        assert again.verify().ok
    assert spill.read_bytes() == b""
