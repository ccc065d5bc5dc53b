"""A bounded in-memory store: the default when no path is configured, and the test double.

It keeps the newest events within two bounds, ``max_events`` and ``max_bytes`` (an estimate of
what the events hold in memory: a fixed cost per event plus its text and payload), evicting the
oldest first and counting what it evicted, and kill state in dicts. The byte bound is what keeps
``Monitor()`` with no config from growing to gigabytes when an agent records large payloads: a
million 4 KB payloads would otherwise be kept. Nothing survives the process, which is the point:
``Monitor()`` with no config needs no disk.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import msgspec

from redline.events import AgentEvent
from redline.store._history import HistoryPoint, from_events
from redline.store.base import EventQuery, KillRecord, StoredEvent

if TYPE_CHECKING:
    from redline.config import MonitorConfig

__all__ = ["DEFAULT_MAX_BYTES", "MemoryStore", "approximate_size"]

#: The default byte bound: 256 MiB of events.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
#: What an event costs before its text and payload: the struct, its StoredEvent, the deque slot.
_BASE_COST = 480
_encode = msgspec.json.encode


def approximate_size(event: AgentEvent) -> int:
    """Roughly the bytes ``event`` holds in memory (within a small factor; cheap to compute)."""
    size = _BASE_COST
    for text in (event.agent, event.session_id, event.user, event.tool, event.model):
        if text:
            size += len(text)
    if event.data:
        size += 2 * len(_encode(event.data))  # dicts and str objects cost about twice their JSON
    if event.tags:
        size += sum(60 + len(t) for t in event.tags if isinstance(t, str))
    return size


class MemoryStore:
    """Events in a bounded deque, kills in a dict; safe to share between threads."""

    backend = "memory"
    #: Nothing outlives the process: no other process can read these events or kills.
    persistent = False

    @classmethod
    def from_config(cls, config: MonitorConfig) -> MemoryStore:
        """The store ``storage`` describes (``max_events``, ``max_memory_bytes``)."""
        st = config.storage
        return cls(max_events=st.max_events, max_bytes=st.max_memory_bytes)

    def __init__(self, max_events: int = 1_000_000, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: deque[StoredEvent] = deque()
        self._sizes: deque[int] = deque()
        self.bytes = 0
        self._seq = itertools.count(1)
        self._kills: dict[tuple[str, str], KillRecord] = {}
        self._kill_version = 0
        self._polled_version = 0
        self._lock = threading.Lock()
        self.evicted = 0

    def after_fork(self) -> None:
        """In a forked child: a fresh lock; the child keeps its copy of the events."""
        self._lock = threading.Lock()

    def append(self, events: Sequence[AgentEvent]) -> None:
        """Keep the batch; the oldest events leave past ``max_events`` or ``max_bytes`` (counted)."""
        sizes = [approximate_size(e) for e in events]  # outside the lock: readers never wait
        with self._lock:
            seq = self._seq
            self._events.extend(StoredEvent(seq=next(seq), event=e) for e in events)
            self._sizes.extend(sizes)
            self.bytes += sum(sizes)
            held, sizes_held = self._events, self._sizes
            while len(held) > 1 and (len(held) > self.max_events or self.bytes > self.max_bytes):
                held.popleft()
                self.bytes -= sizes_held.popleft()
                self.evicted += 1

    def metric_history(
        self, agent: str | None, since: float, until: float, step: int
    ) -> list[HistoryPoint]:
        """Chart points computed from the events held (this store is small by design)."""
        lo = since // step * step  # the first point's start: its whole step is counted
        q = EventQuery(agent=agent, since=lo, until=until, limit=None, order="asc")
        return from_events((s.event for s in self.query(q)), agent, since, until, step)

    def query(self, query: EventQuery) -> Iterator[StoredEvent]:
        """Matching events, newest first unless ``order="asc"``; a snapshot of the moment."""
        with self._lock:
            rows = list(self._events)
        ordered = rows if query.order == "asc" else reversed(rows)
        matching = (r for r in ordered if query.matches(r.seq, r.event))
        if query.limit is not None:
            return itertools.islice(matching, query.limit)
        return iter(matching)

    def count(self, query: EventQuery) -> int:
        """How many stored events match."""
        with self._lock:
            rows = list(self._events)
        return sum(1 for r in rows if query.matches(r.seq, r.event))

    def load_kills(self) -> list[KillRecord]:
        """The kill records."""
        with self._lock:
            return list(self._kills.values())

    def put_kill(self, record: KillRecord) -> None:
        """Insert or replace a kill record."""
        with self._lock:
            self._kills[record.key] = record
            self._kill_version += 1

    def delete_kill(self, scope: str, target: str) -> None:
        """Remove a kill record."""
        with self._lock:
            if self._kills.pop((scope, target), None) is not None:
                self._kill_version += 1

    def poll_kills(self) -> list[KillRecord] | None:
        """Kill state when it changed since the last poll (only this process can change it)."""
        with self._lock:
            if self._kill_version == self._polled_version:
                return None
            self._polled_version = self._kill_version
            return list(self._kills.values())

    def close(self) -> None:
        """Nothing to release."""
        return None
