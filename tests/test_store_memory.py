"""The memory store is bounded by size as well as count, so ``Monitor()`` cannot eat the host."""

from __future__ import annotations

import pytest

from redline import AgentEvent, ConfigError, Monitor, parse_config
from redline.store.base import EventQuery
from redline.store.memory import DEFAULT_MAX_BYTES, MemoryStore, approximate_size


def big(i: int, kb: int = 4) -> AgentEvent:
    return AgentEvent(agent="a", data={"i": i, "blob": "x" * (kb * 1024)})


def test_large_payloads_are_bounded_by_bytes_not_only_count() -> None:
    store = MemoryStore(max_events=1_000_000, max_bytes=1_000_000)
    store.append([big(i) for i in range(2_000)])  # ~16 MB of estimated payload
    assert store.bytes <= 1_000_000
    kept = list(store.query(EventQuery(limit=None, order="asc")))
    assert 50 < len(kept) < 2_000
    assert store.evicted == 2_000 - len(kept)  # what left is counted
    assert kept[-1].event.data["i"] == 1_999  # the newest are the ones kept
    assert [s.event.data["i"] for s in kept] == list(range(2_000 - len(kept), 2_000))


def test_the_count_bound_still_holds_for_small_events() -> None:
    store = MemoryStore(max_events=10)
    store.append([AgentEvent(agent="a") for _ in range(25)])
    assert store.count(EventQuery()) == 10
    assert store.evicted == 15


def test_one_event_larger_than_the_bound_is_still_kept() -> None:
    """The newest event stays even alone over the bound: the store never goes empty on a write."""
    store = MemoryStore(max_bytes=100_000)
    store.append([big(0, kb=200)])
    assert store.count(EventQuery()) == 1


def test_the_estimate_tracks_the_payload() -> None:
    small = approximate_size(AgentEvent(agent="a"))
    assert 200 < small < 2_000
    assert approximate_size(big(0, kb=64)) > 64 * 1024


def test_monitor_default_and_config(tmp_path: object) -> None:
    with Monitor() as m:
        assert isinstance(m.store, MemoryStore)
        assert m.store.max_bytes == DEFAULT_MAX_BYTES
    config = parse_config({"storage": {"backend": "memory", "max_memory_bytes": 200_000}})
    with Monitor(config) as m:
        for i in range(200):
            m.record(big(i))
        m.flush()
        assert m.store.count(EventQuery()) < 200
        assert m.stats()["store_evicted"] > 0
    with pytest.raises(ConfigError, match=r"storage\.max_memory_bytes: expected at least 65536"):
        parse_config({"storage": {"max_memory_bytes": 10}})
