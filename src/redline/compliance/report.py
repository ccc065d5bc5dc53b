"""What every export shares: the filters, a consistent snapshot of the store, streaming, time.

An export reads the store through the :class:`~redline.store.base.Store` protocol only, always in
ascending order and always through ``store.query()`` (a generator), so nothing is ever loaded
whole. Before the first read the store's head is taken as a *snapshot* (``before_seq``): every
section of a multi-pass report (SOC 2 reads the kill, anomaly, alert and denial events, then every
event once for the totals) sees the same rows even while agents keep recording.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import IO, Any, Final, TypeAlias

import msgspec

from redline.config import MonitorConfig
from redline.store.base import Checkpointed, EventQuery, Store, StoredEvent, Verifiable
from redline.store.chain import Checkpoint, VerifyReport
from redline.timeparse import parse_time

__all__ = [
    "FORMATS",
    "PROGRESS_EVERY",
    "ExportContext",
    "ExportFilters",
    "Output",
    "Progress",
    "iso",
]

#: The formats :func:`redline.compliance.export` writes.
FORMATS: Final = ("soc2", "gdpr", "json", "csv", "jsonl")
#: ``progress`` is called after every this many events of the main pass (and once at the end).
PROGRESS_EVERY: Final = 10_000

Progress: TypeAlias = Callable[[int], object]
Output: TypeAlias = "str | os.PathLike[str] | IO[bytes]"


def iso(ts: float | None) -> str | None:
    """``ts`` (epoch seconds) as ISO 8601 in UTC with microseconds and a ``Z``; ``None`` passes."""
    if ts is None:
        return None
    try:
        sec = math.floor(ts)
        micro = round((ts - sec) * 1e6)
        if micro >= 1_000_000:
            sec, micro = sec + 1, micro - 1_000_000
        prefix = _second(sec)
    except (OverflowError, OSError, ValueError):
        return repr(ts)
    return f"{prefix}.{micro:06d}Z"


@functools.lru_cache(maxsize=4096)
def _second(sec: int) -> str:
    return datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


class ExportFilters(msgspec.Struct, frozen=True, kw_only=True):
    """Which events an export covers; ``None`` means any. Times are epoch seconds (UTC)."""

    since: float | None = None
    until: float | None = None
    agent: str | None = None
    session_id: str | None = None
    user: str | None = None
    event_type: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        now: float,
        since: str | float | datetime | None = None,
        until: str | float | datetime | None = None,
        agent: str | None = None,
        session_id: str | None = None,
        user: str | None = None,
        event_type: str | None = None,
    ) -> ExportFilters:
        """Filters from what a user typed (``since``/``until``: epoch, ISO 8601, or ``"2h"``)."""
        lo = parse_time(since, now=now)
        hi = parse_time(until, now=now)
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"since ({iso(lo)}) is after until ({iso(hi)})")
        return cls(
            since=lo,
            until=hi,
            agent=agent,
            session_id=session_id,
            user=user,
            event_type=event_type,
        )

    def to_dict(self) -> dict[str, Any]:
        """The filters as written into every export (times in ISO 8601 UTC)."""
        return {
            "since": iso(self.since),
            "until": iso(self.until),
            "agent": self.agent,
            "session_id": self.session_id,
            "user": self.user,
            "event_type": self.event_type,
        }


class ExportContext:
    """One export in progress: the store, the config, the filters, the snapshot and the tally.

    ``count``, ``first_seq`` and ``last_seq`` describe the *main pass* (the events the manifest
    speaks for); they are updated while :meth:`stream` is consumed.
    """

    def __init__(
        self,
        store: Store,
        *,
        config: MonitorConfig,
        filters: ExportFilters,
        now: float,
        fmt: str,
        progress: Progress | None = None,
        total: int | None = None,
        verify: bool = True,
    ) -> None:
        self.store = store
        self.config = config
        self.filters = filters
        self.now = now
        self.format = fmt
        self.progress = progress
        self.total = total
        self.verify = verify
        # What the store can prove, decided once: a chain to verify, a head and checkpoints.
        self._chain: Verifiable | None = store if isinstance(store, Verifiable) else None
        self._checkpointed: Checkpointed | None = store if isinstance(store, Checkpointed) else None
        #: The newest seq when the export began; later rows are not exported (``None``: no bound).
        self.snapshot_seq: int | None = (
            int(self._checkpointed.head()[0]) if self._checkpointed is not None else None
        )
        self.count = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self._verification: VerifyReport | None = None
        self._verified = False
        self._checkpoint: Checkpoint | None = None
        self._checkpoint_done = False

    # -- reading ---------------------------------------------------------------------------
    def query(self, **overrides: Any) -> EventQuery | None:
        """The export's query in ascending order, narrowed by ``overrides``.

        Returns ``None`` when an override contradicts the export's own filter (a section for
        ``event_type="kill"`` in an export filtered to ``event_type="denial"`` has no rows).
        """
        f = self.filters
        fields: dict[str, Any] = {
            "agent": f.agent,
            "session_id": f.session_id,
            "event_type": f.event_type,
            "user": f.user,
            "since": f.since,
            "until": f.until,
        }
        for key, value in overrides.items():
            current = fields.get(key)
            if current is not None and value is not None and current != value:
                return None
            fields[key] = value
        fields.setdefault("order", "asc")
        if self.snapshot_seq is not None and "before_seq" not in fields:
            fields["before_seq"] = self.snapshot_seq + 1
        return EventQuery(**fields)

    def rows(self, **overrides: Any) -> Iterator[StoredEvent]:
        """Stream a side section's rows (not counted in the manifest); empty if contradictory."""
        q = self.query(**overrides)
        return iter(()) if q is None else self.store.query(q)

    def stream(self) -> Iterator[StoredEvent]:
        """Stream the main pass, counting it and calling ``progress`` every ~10 k events."""
        q = self.query()
        assert q is not None
        progress = self.progress
        count = self.count
        lo, hi = self.first_seq, self.last_seq
        step = PROGRESS_EVERY
        due = count + step
        try:
            for stored in self.store.query(q):
                seq = stored.seq
                if lo is None or seq < lo:
                    lo = seq
                if hi is None or seq > hi:
                    hi = seq
                count += 1
                yield stored
                if count >= due:
                    due = count + step
                    self.count, self.first_seq, self.last_seq = count, lo, hi
                    if progress is not None:
                        progress(count)
        finally:
            self.count, self.first_seq, self.last_seq = count, lo, hi
        if progress is not None and (count == 0 or count % step):
            progress(count)

    def edge(self, order: str) -> StoredEvent | None:
        """The first (``"asc"``) or last (``"desc"``) matching event, or ``None``."""
        q = self.query(order=order, limit=1)
        if q is None:
            return None
        return next(iter(self.store.query(q)), None)

    # -- proof -----------------------------------------------------------------------------
    def verification(self) -> VerifyReport | None:
        """The store's chain verification (run once, after the events were read); ``None`` when
        the store keeps no chain or ``verify=False``."""
        if not self._verified:
            self._verified = True
            if self.verify and self._chain is not None:
                self._verification = self._chain.verify()
        return self._verification

    def checkpoint(self) -> Checkpoint | None:
        """The first stored checkpoint at or after the last exported seq (signing the head first
        when none covers it yet and the chain verified); ``None`` for stores without checkpoints."""
        if self._checkpoint_done:
            return self._checkpoint
        self._checkpoint_done = True
        store = self._checkpointed
        if store is None:
            return None
        target = self.last_seq if self.last_seq is not None else self.snapshot_seq
        if target is None or target <= 0:
            return None
        found = _first_covering(store.checkpoints(), target)
        report = self.verification()
        if found is None and report is not None and report.ok:
            from redline.exceptions import StoreError

            # A read-only store signs nothing (None); a busy writer's lock: no checkpoint either.
            with contextlib.suppress(StoreError):
                if store.checkpoint() is not None:
                    found = _first_covering(store.checkpoints(), target)
        self._checkpoint = found
        return found


def _first_covering(checkpoints: list[Checkpoint], seq: int) -> Checkpoint | None:
    return next((c for c in checkpoints if c.seq >= seq), None)
