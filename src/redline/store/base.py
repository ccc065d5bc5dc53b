"""The ``Store`` protocol, and the small capability protocols a backend may add to it.

One protocol for every backend (memory, JSONL, SQLite, PostgreSQL), so ``Monitor`` never changes
when the engine does. The split of work:

* ``append()`` is called by the monitor's background writer only, with batches; it assigns sequence
  numbers, extends the hash chain and commits. When it returns, the batch is durable.
* queries stream (``query()`` is an iterator), never load a result set whole.
* kill state is a table: ``put_kill()``/``delete_kill()`` commit at once (a kill is never left in
  a queue), and ``poll_kills()`` answers cheaply whether anyone, in any process, changed it.
* ``persistent`` says whether events and kill state outlive the process, so that another
  process (the CLI, a second monitor) can open the same store. It is what a caller means when it
  asks "is this the memory store?": durability rules and cross-process polling need it.

What only some backends can do is a capability: a ``runtime_checkable`` protocol of a few
methods, checked with ``isinstance`` once, where a store is opened or a part is built, instead of
``getattr`` probes at every use (the shape of prometheus_client's ``collect``/``describe``).
Capability protocols hold methods only, so ``issubclass`` works on the backend classes too.

================  ======  =====  ======  ========
capability        memory  jsonl  sqlite  postgres
================  ======  =====  ======  ========
``persistent``    no      yes    yes     yes
ForkAware         yes     yes    yes     yes
Verifiable        no      yes    yes     yes
Checkpointed      no      no     yes     yes
Prunable          no      no     yes     yes
GroupedCounts     no      no     yes     yes
Describable       no      no     yes     yes
SharedKillState   no      no     yes     yes
FleetRollups      no      no     no      yes
Leadership        no      no     no      yes
MetricHistory     yes     yes    yes     yes
BudgetLedgers     no      no     yes     yes
================  ======  =====  ======  ========

The contract suite (``tests/contract``) runs every backend against the protocol and asserts this
matrix, so a backend that loses a capability fails a test rather than a feature going quiet.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from redline.events import AgentEvent

if TYPE_CHECKING:  # chain.py needs cryptography; the memory store must not
    from redline.store.chain import Checkpoint, VerifyReport

__all__ = [
    "CAPABILITIES",
    "KILL_COLUMNS",
    "Checkpointed",
    "Describable",
    "EventQuery",
    "FleetRollups",
    "FleetRow",
    "FleetSnapshot",
    "ForkAware",
    "GroupedCounts",
    "KillRecord",
    "Leadership",
    "MetricHistory",
    "Prunable",
    "PruneReport",
    "SharedKillState",
    "Store",
    "StoredEvent",
    "Verifiable",
    "capabilities_of",
]

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
    #: Whether events and kill state outlive this process (another process can open them).
    persistent: bool

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


class PruneReport(msgspec.Struct, kw_only=True):
    """What retention removed (or would remove, with ``dry_run``), by category."""

    dry_run: bool
    erased: dict[str, int]
    dropped_rows: int = 0
    anchor_seq: int = 0
    #: The id of the signed prune record that accounts for this prune (``None``: nothing changed,
    #: a dry run, or a store that keeps no records).
    record: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


class FleetRow(msgspec.Struct, kw_only=True):
    """One agent's (or the fleet's, ``agent="*"``) totals over a window, from the rollup."""

    agent: str
    events: int = 0
    actions: int = 0
    denials: int = 0
    errors: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    cost: float = 0.0
    latency_sum: float = 0.0
    latency_n: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    denial_rate: float = 0.0
    error_rate: float = 0.0
    avg_latency_ms: float = 0.0
    cost_per_minute: float = 0.0
    events_per_minute: float = 0.0


class FleetSnapshot(msgspec.Struct, kw_only=True):
    """Fleet totals and per-agent rows over ``[since, now]`` (whole minutes, see the docs)."""

    window_seconds: float
    now: float
    since: float
    totals: FleetRow
    agents: list[FleetRow]

    def to_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


# -- capabilities ---------------------------------------------------------------------------


@runtime_checkable
class ForkAware(Protocol):
    """A store that holds what must not cross ``os.fork()`` (connections, locks) and renews it
    in the child. Checked once, when the monitor is built."""

    def after_fork(self) -> None:
        """Re-initialise in a forked child; the parent's resources are abandoned, not closed."""


@runtime_checkable
class Verifiable(Protocol):
    """A store whose rows are hash-chained: ``verify`` says whether, and where, it was altered."""

    def verify(self, *, public_key: str | None = None) -> VerifyReport:
        """Walk the whole chain; ``public_key`` pins the checkpoint signer (hex)."""
        ...


@runtime_checkable
class Checkpointed(Verifiable, Protocol):
    """A chained store with a readable head and signed checkpoints over it.

    Exports take ``head()`` as their snapshot and carry the first checkpoint covering what they
    exported; ``checkpoint()`` signs the head now (``None`` when there is nothing to sign, or the
    store was opened read-only).
    """

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the newest row (the anchor when empty)."""
        ...

    def checkpoints(self) -> list[Checkpoint]:
        """Every stored checkpoint, oldest first."""
        ...

    def checkpoint(self) -> Checkpoint | None:
        """Sign the current head now; ``None`` when there is nothing this store may sign."""
        ...


@runtime_checkable
class Prunable(Protocol):
    """A store that applies retention: erase content past a per-category cutoff, keep the chain."""

    def prune(self, cutoffs: dict[str, float], *, dry_run: bool = False) -> PruneReport:
        """Erase events older than their category's cutoff (epoch seconds)."""
        ...


@runtime_checkable
class GroupedCounts(Protocol):
    """A store that counts matching events per column value in the engine (``GROUP BY``)."""

    def counts_by(self, column: str, query: EventQuery) -> dict[str, int]:
        """Counts by ``agent``, ``event_type``, ``category``, ``user`` or ``session_id``."""
        ...


@runtime_checkable
class Describable(Protocol):
    """A store that describes itself (row counts, head, size, health) for status and readiness."""

    def info(self) -> dict[str, Any]:
        """A JSON-ready dict; ``path`` names the store."""
        ...


@runtime_checkable
class SharedKillState(Protocol):
    """Kill state read from an engine other processes write, so its freshness can be known.

    ``kill_switch.fail_mode: closed`` compares ``kill_state_age()`` with ``stale_after_seconds``.
    """

    def kill_state_age(self) -> float:
        """Seconds since kill state was last read from the engine (``inf`` if never)."""
        ...


@runtime_checkable
class FleetRollups(Protocol):
    """A store that keeps per-minute rollups of every writer's events (the fleet's totals)."""

    def fleet_snapshot(
        self, window_seconds: float = 300.0, now: float | None = None
    ) -> FleetSnapshot:
        """Fleet totals and per-agent rows over the last ``window_seconds``."""
        ...


@runtime_checkable
class MetricHistory(Protocol):
    """A store that answers chart history (events, errors, denials, cost, tokens, p50/p95
    latency per step) from per-minute rollups it keeps as it writes."""

    def metric_history(self, agent: str | None, since: float, until: float, step: int) -> list[Any]:
        """One :class:`~redline.store._history.HistoryPoint` per ``step`` seconds over
        ``[since, until)``, for ``agent`` or (``None``) the whole fleet."""
        ...


@runtime_checkable
class Leadership(Protocol):
    """A store that elects one process of a fleet to do fleet-wide duties (an advisory lock)."""

    def try_lead(self, name: str) -> bool:
        """Whether this process leads ``name`` now (call it periodically)."""
        ...

    def resign(self, name: str) -> None:
        """Give up leadership of ``name`` (if held)."""
        ...


@runtime_checkable
class BudgetLedgers(Protocol):
    """A store whose database holds budget spend and reservations for every process on it
    (:mod:`redline.control.budgets.ledger`); without it, budgets are per process."""

    def budget_ledger(self) -> Any:
        """The store's :class:`~redline.control.budgets.ledger.Ledger` (one per store, made on first use)."""
        ...


#: Every capability protocol by name, in the order of the module's matrix.
CAPABILITIES: dict[str, type] = {
    "ForkAware": ForkAware,
    "Verifiable": Verifiable,
    "Checkpointed": Checkpointed,
    "Prunable": Prunable,
    "GroupedCounts": GroupedCounts,
    "Describable": Describable,
    "SharedKillState": SharedKillState,
    "FleetRollups": FleetRollups,
    "Leadership": Leadership,
    "MetricHistory": MetricHistory,
    "BudgetLedgers": BudgetLedgers,
}


def capabilities_of(store: object) -> frozenset[str]:
    """The names of the capability protocols ``store`` (an instance or a class) satisfies."""
    if isinstance(store, type):
        return frozenset(n for n, proto in CAPABILITIES.items() if issubclass(store, proto))
    return frozenset(n for n, proto in CAPABILITIES.items() if isinstance(store, proto))
