"""The ``Store`` protocol: what the monitor, the CLI, the server and exports need of storage.

One protocol for every backend (memory, JSONL, SQLite, PostgreSQL), so ``Monitor`` never changes
when the engine does. The split of work:

* ``append()`` is called by the monitor's background writer only, with batches; it assigns sequence
  numbers, extends the hash chain and commits. When it returns, the batch is durable.
* queries stream (``query()`` is an iterator), never load a result set whole.
* kill state is a table: ``put_kill()``/``delete_kill()`` commit at once (a kill is never left in
  a queue), and ``poll_kills()`` answers cheaply whether anyone, in any process, changed it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from redline.events import AgentEvent

__all__ = ["KILL_COLUMNS", "EventQuery", "KillRecord", "Store", "StoredEvent"]

#: The columns of a kill row, in :meth:`KillRecord.as_row` order.
KILL_COLUMNS = "scope, target, reason, actor, created_at, expires_at, policy"


class KillRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One active kill switch: ``scope`` is ``global``, ``agent`` or ``session``."""

    scope: str
    target: str
    reason: str = ""
    actor: str = ""
    created_at: float
    expires_at: float | None = None
    policy: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """``(scope, target)``: at most one record per key."""
        return (self.scope, self.target)

    def expired(self, now: float) -> bool:
        """Whether a TTL has run out at ``now``."""
        return self.expires_at is not None and now >= self.expires_at

    def as_row(self) -> tuple[Any, ...]:
        """The record as a row of :data:`KILL_COLUMNS` (what SQL stores insert)."""
        return (
            self.scope,
            self.target,
            self.reason,
            self.actor,
            self.created_at,
            self.expires_at,
            self.policy,
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> KillRecord:
        """A record from a row of :data:`KILL_COLUMNS`."""
        return cls(
            scope=row[0],
            target=row[1],
            reason=row[2],
            actor=row[3],
            created_at=row[4],
            expires_at=row[5],
            policy=row[6],
        )


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An event as stored: its sequence number and, where the store chains, its hashes."""

    seq: int
    event: AgentEvent
    hash: str | None = None
    prev_hash: str | None = None

    def to_dict(self) -> dict[str, object]:
        """The event's fields plus ``seq`` (and the hashes when present)."""
        out: dict[str, object] = {"seq": self.seq, **self.event.to_dict()}
        if self.hash is not None:
            out["hash"] = self.hash
            out["prev_hash"] = self.prev_hash
        return out


class EventQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters for ``Store.query``; ``None`` means any. Times are epoch seconds (UTC).

    ``order`` is ``"desc"`` (newest first, the default) or ``"asc"``; ``after_seq`` /
    ``before_seq`` give cursor pagination in either direction.
    """

    agent: str | None = None
    session_id: str | None = None
    event_type: str | None = None
    user: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int | None = None
    order: str = "desc"
    after_seq: int | None = None
    before_seq: int | None = None

    def matches(self, seq: int, e: AgentEvent) -> bool:
        """Whether one event passes every filter (for stores that filter in Python)."""
        return (
            (self.agent is None or e.agent == self.agent)
            and (self.session_id is None or e.session_id == self.session_id)
            and (self.event_type is None or e.event_type == self.event_type)
            and (self.user is None or e.user == self.user)
            and (self.since is None or e.timestamp >= self.since)
            and (self.until is None or e.timestamp <= self.until)
            and (self.after_seq is None or seq > self.after_seq)
            and (self.before_seq is None or seq < self.before_seq)
        )


@runtime_checkable
class Store(Protocol):
    """Durable (or deliberately not) storage of events and kill state."""

    #: ``memory``, ``jsonl``, ``sqlite`` or ``postgres``.
    backend: str

    def append(self, events: Sequence[AgentEvent]) -> None:
        """Commit a batch in order. Called from the writer thread only."""
        ...

    def query(self, query: EventQuery) -> Iterator[StoredEvent]:
        """Stream matching events in the query's order."""
        ...

    def count(self, query: EventQuery) -> int:
        """How many events match (ignoring ``limit``)."""
        ...

    def load_kills(self) -> list[KillRecord]:
        """Every persisted kill record (expired ones included; the caller decides)."""
        ...

    def put_kill(self, record: KillRecord) -> None:
        """Insert or replace the record for ``record.key`` and commit at once."""
        ...

    def delete_kill(self, scope: str, target: str) -> None:
        """Remove the record for ``(scope, target)`` if any, and commit at once."""
        ...

    def poll_kills(self) -> list[KillRecord] | None:
        """The full kill state if it may have changed since the last poll, else ``None``.

        Called from the monitor's background thread every ``poll_interval_seconds``; must be
        cheap when nothing changed (SQLite: ``PRAGMA data_version``; PostgreSQL: LISTEN/NOTIFY
        plus a periodic re-read).
        """
        ...

    def close(self) -> None:
        """Release connections and files. Idempotent."""
        ...


@runtime_checkable
class ForkAware(Protocol):
    """A store that holds what must not cross ``os.fork()`` (connections, locks) and renews it
    in the child. Checked once, when the monitor is built."""

    def after_fork(self) -> None:
        """Re-initialise in a forked child; the parent's resources are abandoned, not closed."""
